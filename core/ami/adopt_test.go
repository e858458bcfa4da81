package ami_test

import (
	"context"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/ami"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/internal/ec2local"
)

func TestAdopt(t *testing.T) {
	srv, clients := startEC2(t)
	api, err := clients(context.Background(), "us-east-1")
	assert.NilError(t, err)
	tr, err := tree.Parse("amichain.yaml", []byte("upstream: {ami: ami-0aaaaaaaaaaaa0001}\nimages:\n"+
		"  - {name: base, template: t.pkr.hcl, playbook: base.yml}\n  - {name: web, parent: base, template: t.pkr.hcl, playbook: web.yml}\n"))
	assert.NilError(t, err)
	built := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	tags := map[string]string{ami.TagImage: "web", ami.TagFingerprint: "sha256-abc", ami.TagParentAMI: "ami-0b0b0b0b0b0b0b0b0", ami.TagCommit: "0123abc"}
	good := srv.AddImage(ec2local.Image{Name: "web-1", Tags: tags, CreationDate: built})
	untagged := srv.AddImage(ec2local.Image{Name: "hand-made"})
	pending := srv.AddImage(ec2local.Image{Name: "web-2", Tags: tags, State: "pending"})
	other := srv.AddImage(ec2local.Image{Name: "db-1", Tags: map[string]string{ami.TagImage: "db", ami.TagFingerprint: "f", ami.TagParentAMI: "ami-0b0b0b0b0b0b0b0b0"}})
	tests := []struct {
		name, id, wantErr string
		want              record.Record
	}{
		{name: "tagged by amichain", id: good, want: record.Record{Scheme: record.Scheme, Image: "web", Fingerprint: "sha256-abc",
			Region: "us-east-1", AMIs: map[string]string{"us-east-1": good}, Parent: "base", ParentAMI: "ami-0b0b0b0b0b0b0b0b0",
			Commit: "0123abc", BuiltAt: built}},
		{name: "not built by amichain", id: untagged, wantErr: "it has no amichain:image tag"},
		{name: "not available yet", id: pending, wantErr: "the AMI is pending, not available"},
		{name: "unknown id", id: "ami-0000000000000dead", wantErr: "no such AMI in us-east-1"},
		{name: "image not in the tree", id: other, wantErr: `built for image "db", which amichain.yaml does not declare`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ami.Adopt(context.Background(), api, "us-east-1", tc.id, tr)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
		})
	}
}
