// Package repotest gives tests a scratch copy of the repository's image sources (the tree,
// the toolchain pins, packer/ and ansible/), so that they can edit files freely.
package repotest

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/internal/testtool"
)

// Sources are the repository paths an image is made from.
var sources = []string{"amichain.yaml", "toolchain.env", "packer", "ansible"}

// Copy copies the image sources into a new temporary directory and returns it.
func Copy(t testing.TB) string {
	t.Helper()
	root := testtool.Root(t)
	dst := t.TempDir()
	for _, s := range sources {
		src := filepath.Join(root, s)
		info, err := os.Stat(src)
		assert.NilError(t, err)
		if info.IsDir() {
			assert.NilError(t, os.CopyFS(filepath.Join(dst, s), os.DirFS(src)), s)
			continue
		}
		data, err := os.ReadFile(src)
		assert.NilError(t, err)
		assert.NilError(t, os.WriteFile(filepath.Join(dst, s), data, 0o644))
	}
	return dst
}

// Append adds text to the end of the file at rel under dir: an edit that keeps YAML valid
// when text is a comment.
func Append(t testing.TB, dir, rel, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, rel), os.O_APPEND|os.O_WRONLY, 0)
	assert.NilError(t, err)
	_, err = f.WriteString(text)
	assert.NilError(t, err)
	assert.NilError(t, f.Close())
}
