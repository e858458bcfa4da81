package ansibledeps_test

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/ansibledeps"
	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/internal/testtool"
)

// TestShippedTree analyses every image of the repository's own tree: no error, and no role
// of another image leaks in (web does not hash buildkite_agent).
func TestShippedTree(t *testing.T) {
	root := testtool.Root(t)
	tr, err := tree.Load(os.DirFS(root), tree.DefaultPath)
	assert.NilError(t, err)
	for _, img := range tr.Images {
		d, err := ansibledeps.Analyze(os.DirFS(root), img.Playbook)
		assert.NilError(t, err, img.Name)
		assert.NilError(t, d.Check(img.Inputs), img.Name)
		t.Logf("%s: %d files", img.Name, len(d.Files))
		if img.Name == "web" {
			for _, f := range d.Files {
				assert.Check(t, !within(f, filepath.Join("ansible", "roles", "buildkite_agent")), "web hashes %s", f)
			}
		}
	}
}

func within(p, dir string) bool { return len(p) > len(dir) && p[:len(dir)+1] == dir+"/" }
