package tree_test

import (
	"testing"
	"testing/fstest"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/tree"
)

const reference = `
upstream:
  owners: ["136693071363"]
  name: debian-12-amd64-*
images:
  - {name: web, parent: base, template: packer/image.pkr.hcl, playbook: ansible/web.yml}
  - {name: base, template: packer/image.pkr.hcl, playbook: ansible/base.yml}
  - {name: canary, parent: web, template: packer/image.pkr.hcl, playbook: ansible/web.yml}
  - {name: worker, parent: base, template: packer/image.pkr.hcl, playbook: ansible/worker.yml, inputs: [files/app.tar]}
`

func files(paths ...string) fstest.MapFS {
	m := fstest.MapFS{}
	for _, p := range paths {
		m[p] = &fstest.MapFile{Data: []byte("x")}
	}
	return m
}

func TestLoadOrdersParentsFirst(t *testing.T) {
	fsys := files("packer/image.pkr.hcl", "ansible/base.yml", "ansible/web.yml", "ansible/worker.yml", "files/app.tar")
	fsys["amichain.yaml"] = &fstest.MapFile{Data: []byte(reference)}
	tr, err := tree.Load(fsys, "amichain.yaml")
	assert.NilError(t, err)
	assert.DeepEqual(t, tr.Names(), []string{"base", "web", "worker", "canary"})
	assert.Check(t, tr.Upstream.IsLookup())
	assert.DeepEqual(t, tr.Ancestors("canary"), []string{"web", "base"})
	var kids []string
	for _, c := range tr.Children("base") {
		kids = append(kids, c.Name)
	}
	assert.DeepEqual(t, kids, []string{"web", "worker"})
}

func TestParseRejects(t *testing.T) {
	img := func(name, parent string) string {
		return "  - {name: " + name + ", parent: '" + parent + "', template: t.pkr.hcl, playbook: p.yml}\n"
	}
	const up = "upstream: {ami: ami-0123}\nimages:\n"
	tests := []struct {
		name, yaml, err string
	}{
		{"cycle", up + img("a", "") + img("b", "c") + img("c", "b"), "cycle in the image tree: b -> c -> b"},
		{"self parent", up + img("a", "a"), "cycle in the image tree: a -> a"},
		{"unknown parent", up + img("a", "") + img("b", "nope"), `image "b": unknown parent "nope"`},
		{"duplicate", up + img("a", "") + img("a", ""), `image "a" is declared twice`},
		{"missing template", up + "  - {name: a, playbook: p.yml}\n", `image "a": missing template`},
		{"missing playbook", up + "  - {name: a, template: t.pkr.hcl}\n", `image "a": missing playbook`},
		{"bad name", up + img("Web_1", ""), `name "Web_1"`},
		{"no upstream", "images:\n" + img("a", ""), "upstream: missing"},
		{"both upstreams", "upstream: {ami: ami-1, owners: [x], name: y}\nimages:\n" + img("a", ""), "not both"},
		{"not an ami", "upstream: {ami: debian}\nimages:\n" + img("a", ""), `ami "debian" is not an AMI id`},
		{"no images", up, "images: none declared"},
		{"container not a reference", "upstream: {ami: ami-1, container: 'debian bookworm'}\nimages:\n" + img("a", ""), `container "debian bookworm" is not an image reference`},
		{"empty file", "", "upstream: missing"},
		{"unknown field", up + "  - {name: a, template: t, playbook: p, parnet: b}\n",
			`amichain.yaml:3: unknown field "parnet" in an image (valid fields: name, parent, template, playbook, verify, inputs, vars, encrypt_boot, kms_key_id, region_kms_key_ids, ami_users, ami_org_arns, ami_ou_arns, snapshot_users, imds_support, tags, deprecate_at, ssm_parameter)`},
		{"unknown upstream field", "upstream:\n  amy: ami-1\nimages: []\n",
			`amichain.yaml:2: unknown field "amy" in upstream (valid fields: ami, owners, name, container)`},
		{"unknown top-level field", up + img("a", "") + "imgaes: []\n",
			`amichain.yaml:4: unknown field "imgaes" in the top level (valid fields: upstream, images, defaults)`},
		{"wrong type", "upstream: {ami: [a]}\nimages: []\n", "amichain.yaml:1: cannot unmarshal !!seq into string"},
		{"broken yaml", "images: [\n", "amichain.yaml:1: did not find expected node content (not valid YAML)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tree.Parse("amichain.yaml", []byte(tc.yaml))
			assert.ErrorContains(t, err, tc.err)
			assert.ErrorContains(t, err, "amichain.yaml")
		})
	}
}

func TestLoadChecksFiles(t *testing.T) {
	tests := []struct {
		name  string
		fsys  fstest.MapFS
		input string
		extra string // more fields of the image entry
		err   string
	}{
		{name: "missing template", fsys: files("ansible/base.yml"), err: `image "base": template packer/image.pkr.hcl`},
		{name: "missing playbook", fsys: files("packer/image.pkr.hcl"), err: `image "base": playbook ansible/base.yml`},
		{name: "missing input", fsys: files("packer/image.pkr.hcl", "ansible/base.yml"), input: "files/x", err: `input files/x`},
		{name: "input outside the repo", fsys: files("packer/image.pkr.hcl", "ansible/base.yml"), input: "../x", err: `must be a relative path inside the repository`},
		{name: "missing verify playbook", fsys: files("packer/image.pkr.hcl", "ansible/base.yml"), extra: ", verify: ansible/verify/base.yml", err: `image "base": verify playbook ansible/verify/base.yml`},
		{name: "no tree file", fsys: files(), err: "create amichain.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "no tree file" {
				y := "upstream: {ami: ami-0123}\nimages:\n  - {name: base, template: packer/image.pkr.hcl, playbook: ansible/base.yml"
				if tc.input != "" {
					y += ", inputs: ['" + tc.input + "']"
				}
				tc.fsys["amichain.yaml"] = &fstest.MapFile{Data: []byte(y + tc.extra + "}\n")}
			}
			tr, err := tree.Load(tc.fsys, "amichain.yaml")
			if tc.name == "no tree file" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			// A missing file breaks its image only: the tree loads.
			assert.NilError(t, err)
			assert.ErrorContains(t, tr.Broken["base"], tc.err)
			assert.ErrorContains(t, tr.CheckFiles(tc.fsys, "amichain.yaml"), tc.err)
		})
	}
}
