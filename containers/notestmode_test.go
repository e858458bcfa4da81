package containers

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// TestNoTestMode: the files users copy (ansible/, packer/) carry no test scaffolding (a path
// prefix, a tag tests skip, a guard on skipped tags), so what the containers prove is what
// ships. Overrides are plain variables with real defaults. It lives here, not in ansible/, so
// that the product folders do not even name the scaffolding.
func TestNoTestMode(t *testing.T) {
	scaffolding := regexp.MustCompile(`amichain_root|ansible_skip_tags|tags:\s*\[?\s*system\b|skip-tags`)
	var checked int
	for _, dir := range []string{"../ansible", "../packer"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			checked++
			for i, line := range strings.Split(string(data), "\n") {
				if m := scaffolding.FindString(line); m != "" {
					t.Errorf("%s:%d: test scaffolding %q in a product file: use a plainly named variable with the real default", path, i+1, m)
				}
			}
			return nil
		})
		assert.NilError(t, err)
	}
	assert.Assert(t, checked > 20, "checked only %d files", checked)
}
