package upstream_test

import (
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/core/upstream"
	"github.com/amichain/amichain/internal/ec2local"
)

const debian = "136693071363"

func TestResolve(t *testing.T) {
	day := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	srv, err := ec2local.Start(t.Context(), ec2local.Options{Images: []ec2local.Image{
		{ID: "ami-00000000000000old", Name: "debian-12-amd64-20250101-1", OwnerID: debian, CreationDate: day},
		{ID: "ami-00000000000000new", Name: "debian-12-amd64-20250301-3", OwnerID: debian, CreationDate: day.AddDate(0, 2, 0)},
		{ID: "ami-0000000000000midl", Name: "debian-12-amd64-20250201-2", OwnerID: debian, CreationDate: day.AddDate(0, 1, 0)},
		// Newer, but not what the lookup asks for: another owner, another name, not yet available.
		{ID: "ami-000000000000other", Name: "debian-12-amd64-20250401-4", OwnerID: "999999999999", CreationDate: day.AddDate(0, 3, 0)},
		{ID: "ami-0000000000000arm6", Name: "debian-12-arm64-20250401-4", OwnerID: debian, CreationDate: day.AddDate(0, 3, 0)},
		{ID: "ami-0000000000000pend", Name: "debian-12-amd64-20250402-5", OwnerID: debian, CreationDate: day.AddDate(0, 3, 1), State: "pending"},
		// Same creation date: the greater id wins, whatever the order of results.
		{ID: "ami-00000000000tie-b", Name: "tie-b", OwnerID: debian, CreationDate: day},
		{ID: "ami-00000000000tie-a", Name: "tie-a", OwnerID: debian, CreationDate: day},
	}})
	assert.NilError(t, err)
	t.Cleanup(func() { assert.NilError(t, srv.Close()) })

	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-never-shown")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	api, err := upstream.NewClient(t.Context(), "us-east-1", srv.URL(), nil)
	assert.NilError(t, err)

	tests := []struct {
		name    string
		u       tree.Upstream
		fail    string // make the next DescribeImages fail with this code
		want    string
		wantErr string
	}{
		{name: "fixed", u: tree.Upstream{AMI: "ami-00000000000000old"}, want: "ami-00000000000000old"},
		{name: "fixed but missing", u: tree.Upstream{AMI: "ami-0000000000000gone"}, wantErr: "upstream AMI ami-0000000000000gone does not exist (or is not visible to this account and region): fix upstream.ami in amichain.yaml"},
		{name: "fixed but not available", u: tree.Upstream{AMI: "ami-0000000000000pend"}, wantErr: "upstream AMI ami-0000000000000pend is pending, not available"},
		{name: "lookup picks the newest", u: tree.Upstream{Owners: []string{debian}, Name: "debian-12-amd64-*"}, want: "ami-00000000000000new"},
		{name: "lookup with several owners", u: tree.Upstream{Owners: []string{"999999999999", debian}, Name: "debian-12-amd64-*"}, want: "ami-000000000000other"},
		{name: "lookup tie goes to the greater id", u: tree.Upstream{Owners: []string{debian}, Name: "tie-*"}, want: "ami-00000000000tie-b"},
		{
			name:    "lookup without match",
			u:       tree.Upstream{Owners: []string{debian}, Name: "debian-13-*"},
			wantErr: `no available AMI owned by [136693071363] has a name matching "debian-13-*": check upstream.owners and upstream.name in amichain.yaml (and the region), or pin one with upstream.ami`,
		},
		{
			name:    "lookup server error",
			u:       tree.Upstream{Owners: []string{debian}, Name: "debian-12-amd64-*"},
			fail:    "UnauthorizedOperation",
			wantErr: `look up upstream AMI (owners [136693071363], name "debian-12-amd64-*"):`,
		},
		{name: "fixed server error", u: tree.Upstream{AMI: "ami-00000000000000old"}, fail: "UnauthorizedOperation", wantErr: "check upstream AMI ami-00000000000000old:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fail != "" {
				srv.FailNext("DescribeImages", tc.fail, "You are not authorized to perform this operation.")
			}
			got, err := upstream.Resolve(t.Context(), api, tc.u)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				assert.Assert(t, !strings.Contains(err.Error(), "test-secret-never-shown"))
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)
		})
	}
}
