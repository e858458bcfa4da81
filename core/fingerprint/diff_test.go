package fingerprint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/amichain/amichain/core/toolchain"
	"github.com/amichain/amichain/core/tree"
)

func TestDiff(t *testing.T) {
	old := []Input{
		{Name: "file:ansible/roles/nginx/tasks/main.yml", Digest: "aa"},
		{Name: "file:ansible/roles/nginx/files/old.conf", Digest: "bb"},
		{Name: "file:packer/image.pkr.hcl", Digest: "cc"},
		{Name: "image", Digest: "dd"},
		{Name: "parent-ami", Digest: "ami-1"},
		{Name: "scheme", Digest: "amichain-fingerprint/0"},
		{Name: "tool:ansible-core", Digest: "2.14.18"},
		{Name: "tool:packer", Digest: "1.11.2"},
		{Name: "tool:packer:sum", Digest: "h1:old="},
		{Name: "tool:packer-plugin-docker", Digest: "1.0.0"},
	}
	tests := []struct {
		name string
		new  []Input
	}{
		{name: "identical", new: old},
		{
			name: "everything",
			new: []Input{
				{Name: "file:ansible/roles/nginx/tasks/main.yml", Digest: "a2"},
				{Name: "file:ansible/roles/nginx/templates/new.j2", Digest: "ee"},
				{Name: "file:packer/image.pkr.hcl", Digest: "cc"},
				{Name: "image", Digest: "d2"},
				{Name: "parent-ami", Digest: "ami-2"},
				{Name: "scheme", Digest: Scheme},
				{Name: "tool:ansible-core", Digest: "2.14.18"},
				{Name: "tool:packer", Digest: "1.12.0"},
				{Name: "tool:packer:sum", Digest: "h1:new="},
				{Name: "tool:foo:", Digest: "x"},
			},
		},
		{name: "only parent AMI and scheme left", new: old[4:6]},
	}
	var out strings.Builder
	for _, tc := range tests {
		// Order of the inputs must not matter.
		reversed := make([]Input, len(tc.new))
		for i, in := range tc.new {
			reversed[len(tc.new)-1-i] = in
		}
		got := Diff(old, tc.new)
		assert.DeepEqual(t, Diff(old, reversed), got)
		out.WriteString("== " + tc.name + "\n")
		for _, r := range got {
			out.WriteString(r + "\n")
		}
	}
	out.WriteString("== nothing before\n" + strings.Join(Diff(nil, old[4:5]), "\n") + "\n")
	golden.Assert(t, out.String(), "diff.golden")
}

// Diff over real fingerprints: the reasons a planner shows after edits to a checkout.
func TestDiffOfComputedSets(t *testing.T) {
	img := tree.Image{Name: "web", Parent: "base", Template: "packer/image.pkr.hcl", Playbook: "ansible/web.yml"}
	tools := toolchain.Versions{"PACKER_VERSION": "1.11.2", "ANSIBLE_CORE_VERSION": "2.14.18"}
	before, err := NewHasher(os.DirFS(fixture)).Compute(img, tools, "ami-1")
	assert.NilError(t, err)

	dir := copyFixture(t)
	writeFile(t, dir, "ansible/roles/nginx/templates/site.conf.j2", "server { listen 8080; }\n")
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "ansible/roles/nginx/files"), 0o755))
	writeFile(t, dir, "ansible/roles/nginx/files/index.html", "<h1>hi</h1>\n")
	assert.NilError(t, os.Remove(filepath.Join(dir, "ansible/roles/common/templates/motd.j2")))
	img.Vars = map[string]string{"volume_size": "30"}
	tools = toolchain.Versions{"PACKER_VERSION": "1.12.0", "ANSIBLE_CORE_VERSION": "2.14.18"}
	after, err := NewHasher(os.DirFS(dir)).Compute(img, tools, "ami-2")
	assert.NilError(t, err)

	golden.Assert(t, strings.Join(Diff(before.Inputs, after.Inputs), "\n")+"\n", "diff-computed.golden")
	assert.Assert(t, before.Sum != after.Sum)
}
