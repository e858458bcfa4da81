package fingerprint_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/fingerprint"
	"github.com/amichain/amichain/core/tree"
)

// TestEditEveryInput edits, in each layout of the ansibledeps oracle corpus, every file that
// is an input, one at a time: the fingerprint changes and Diff (what plan prints) names it.
// Files of roles no play reaches are no input: editing them changes nothing.
func TestEditEveryInput(t *testing.T) {
	tests := []struct {
		layout, playbook string
		names            []string // Diff lines that must appear for some edit
		outside          []string // files that are not inputs
	}{
		{"playbook-folders", "ansible/site.yml", []string{"ansible/files/conf.d/sub/b.conf changed", "ansible/scripts/hello.sh changed"}, []string{"ansible/templates/unused.j2"}},
		{"loops", "ansible/site.yml", []string{"ansible/templates/extra/e2.j2 changed"}, nil},
		{"role-fallback", "ansible/site.yml", []string{"ansible/templates/shared.j2 changed"}, []string{"ansible/roles/unused/tasks/main.yml"}},
		{"lookups", "ansible/site.yml", []string{"ansible/files/banner.txt changed"}, nil},
		{"jinja", "ansible/site.yml", []string{"ansible/templates/partials/common.j2 changed"}, nil},
		{"include-vars", "ansible/site.yml", []string{"ansible/vars/env/sub/more.yml changed"}, nil},
		{"plugins", "ansible/site.yml", []string{"ansible/filter_plugins/naming.py changed", "ansible/module_utils/amichain_util.py changed"}, nil},
		{"ansible-cfg", "cluster.yml", []string{"ansible.cfg changed", "plugins/filter/kube.py changed", "library/kube_echo.py changed"}, []string{"shared/roles/not_used/tasks/main.yml"}},
		{"collections", "ansible/site.yml", []string{"collections/ansible_collections/acme/platform/meta/runtime.yml changed", "collections/ansible_collections/acme/platform/plugins/filter/shout.py changed"}, []string{"collections/ansible_collections/acme/platform/roles/other/tasks/main.yml"}},
		{"roles", "ansible/site.yml", []string{"ansible/tasks/common.yml changed", "ansible/beside/tasks/main.yml changed"}, []string{"ansible/roles/unused/tasks/main.yml"}},
		{"imported-subfolder", "ansible/node.yml", []string{"ansible/plays/roles/sysprep/tasks/main.yml changed"}, []string{"ansible/plays/roles/top/tasks/main.yml"}},
	}
	for _, tc := range tests {
		t.Run(tc.layout, func(t *testing.T) {
			dir := t.TempDir()
			assert.NilError(t, os.CopyFS(dir, os.DirFS(filepath.Join("..", "ansibledeps", "testdata", "oracle", tc.layout))))
			assert.NilError(t, os.WriteFile(filepath.Join(dir, "image.pkr.hcl"), []byte("# template\n"), 0o644))
			img := tree.Image{Name: "web", Template: "image.pkr.hcl", Playbook: tc.playbook}
			before, err := fingerprint.NewHasher(os.DirFS(dir)).Compute(img, nil, "ami-1")
			assert.NilError(t, err)
			var said []string
			for _, in := range before.Inputs {
				p, ok := strings.CutPrefix(in.Name, "file:")
				if !ok || p == img.Template {
					continue
				}
				assert.Check(t, !slices.Contains(tc.outside, p), "%s is an input", p)
				edit(t, dir, p, func() {
					after, err := fingerprint.NewHasher(os.DirFS(dir)).Compute(img, nil, "ami-1")
					assert.NilError(t, err)
					diff := fingerprint.Diff(before.Inputs, after.Inputs)
					assert.Check(t, is.DeepEqual(diff, []string{p + " changed"}))
					said = append(said, diff...)
				})
			}
			for _, n := range tc.names {
				assert.Check(t, slices.Contains(said, n), "no edit made Diff say %q", n)
			}
			for _, p := range tc.outside {
				edit(t, dir, p, func() {
					after, err := fingerprint.NewHasher(os.DirFS(dir)).Compute(img, nil, "ami-1")
					assert.NilError(t, err)
					assert.Check(t, is.Equal(after.Sum, before.Sum), "editing %s changed the fingerprint", p)
				})
			}
		})
	}
}

// edit appends to a file, calls check, and restores the file.
func edit(t *testing.T, dir, rel string, check func()) {
	t.Helper()
	p := filepath.Join(dir, rel)
	orig, err := os.ReadFile(p)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(p, append(append([]byte(nil), orig...), "\n# edited\n"...), 0o644))
	check()
	assert.NilError(t, os.WriteFile(p, orig, 0o644))
}
