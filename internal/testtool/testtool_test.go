package testtool_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/internal/testtool"
)

// recorder notes the first skip or failure instead of ending the test (as the real ones do),
// so that Find's verdict can be checked.
type recorder struct {
	testing.TB
	verdict string
}

func (r *recorder) Skip(args ...any)  { r.note("skip: ", args) }
func (r *recorder) Fatal(args ...any) { r.note("fatal: ", args) }

func (r *recorder) note(kind string, args []any) {
	if r.verdict == "" {
		r.verdict = kind + fmt.Sprint(args...)
	}
}

func TestFind(t *testing.T) {
	const missing = "amichain-no-such-tool"
	const notFound = missing + " not found in .tools/bin, PATH or /usr/sbin: run .ci/install-tools"
	tests := []struct {
		name, tool, require string
		wantPath            bool
		wantVerdict         string
	}{
		{name: "on PATH", tool: "go", wantPath: true},
		{name: "missing skips", tool: missing, wantVerdict: "skip: " + notFound},
		{name: "missing fails in CI", tool: missing, require: "1", wantVerdict: "fatal: " + notFound + " (AMICHAIN_REQUIRE_TOOLS=1 makes this a failure)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AMICHAIN_REQUIRE_TOOLS", tc.require)
			r := &recorder{TB: t}
			got := testtool.Find(r, tc.tool)
			assert.Check(t, is.Equal(filepath.IsAbs(got), tc.wantPath), "path %q", got)
			assert.Check(t, is.Equal(r.verdict, tc.wantVerdict))
		})
	}
}

func TestRoot(t *testing.T) {
	wd, err := os.Getwd()
	assert.NilError(t, err)
	assert.Equal(t, testtool.Root(t), filepath.Dir(filepath.Dir(wd)))
}

// TestOutputConcurrent writes from several goroutines while reading, as a test does with a
// running tool's output; -race reports a missing lock.
func TestOutputConcurrent(t *testing.T) {
	var out testtool.Output
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprint(&out, "x")
				_ = out.String()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, out.String(), strings.Repeat("x", 400))
}
