package run_test

import (
	"os"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/run"
	"github.com/amichain/amichain/core/upstream"
	"github.com/amichain/amichain/internal/ec2local"
	"github.com/amichain/amichain/internal/repotest"
	"github.com/amichain/amichain/internal/s3test"
)

func TestLoad(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDRUNTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "run-test-dummy")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	srv, err := ec2local.Start(t.Context(), ec2local.Options{Images: []ec2local.Image{
		{ID: "ami-0000000000000deb1", Name: "debian-12-amd64-20261101-2", OwnerID: "136693071363", CreationDate: time.Now()},
	}})
	assert.NilError(t, err)
	defer srv.Close()
	ec2c, err := upstream.NewClient(t.Context(), "us-east-1", srv.URL(), nil)
	assert.NilError(t, err)
	s3 := s3test.StartFake(t)
	store := record.NewStore(s3.Client, record.Config{Bucket: s3.Bucket})
	dir := repotest.Copy(t)

	tests := []struct {
		name string
		opts run.Options
		err  string
	}{
		{name: "lookup without EC2", opts: run.Options{Source: os.DirFS(dir), Records: store},
			err: "the upstream image is a lookup, which needs the EC2 API"},
		{name: "no tree", opts: run.Options{Source: os.DirFS(t.TempDir()), Records: store, EC2: ec2c},
			err: "create amichain.yaml"},
		{name: "resolves the upstream", opts: run.Options{Source: os.DirFS(dir), Records: store, EC2: ec2c}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := run.Load(t.Context(), tc.opts)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, r.UpstreamAMI, "ami-0000000000000deb1")
			p, err := r.Plan(t.Context(), "web")
			assert.NilError(t, err)
			assert.DeepEqual(t, p.Names(), []string{"base", "web"})
			_, err = r.Build(t.Context(), "")
			assert.ErrorContains(t, err, "no builder configured")
		})
	}
}
