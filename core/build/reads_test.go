package build_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/ansibletrace"
	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/plan"
	"github.com/amichain/amichain/internal/repotest"
)

// readingBuilder is a testBuilder whose builds report what Ansible read, as the Packer runner
// does from the trace hook's markers.
type readingBuilder struct {
	testBuilder
	reads map[string][]ansibletrace.Read
}

func (b *readingBuilder) Build(ctx context.Context, req build.Request) (build.Result, error) {
	res, err := b.testBuilder.Build(ctx, req)
	res.Reads = b.reads[req.Image.Name]
	return res, err
}

// TestReadsAreASafetyNet: a file Ansible read that the static analysis missed is named in the
// build output, stored with the record, and a later change to it makes the image stale.
func TestReadsAreASafetyNet(t *testing.T) {
	const missed = "ansible/notes.txt" // no playbook names it: the analysis cannot find it
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		why    string // "" when web stays up to date
	}{
		{name: "nothing changed"},
		{
			name:   "a file only the trace saw",
			change: func(t *testing.T, dir string) { repotest.Append(t, dir, missed, "edited\n") },
			why:    missed + " changed (read by the build of ami-",
		},
		{
			name:   "a file only the trace saw is gone",
			change: func(t *testing.T, dir string) { assert.NilError(t, os.Remove(filepath.Join(dir, missed))) },
			why:    missed + " removed",
		},
		{
			name: "a folder Ansible listed gets a new entry",
			change: func(t *testing.T, dir string) {
				assert.NilError(t, os.WriteFile(filepath.Join(dir, "ansible/vars/new.yml"), []byte("x: 1\n"), 0o644))
			},
			why: "ansible/vars/ listing changed",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			assert.NilError(t, os.WriteFile(filepath.Join(h.dir, missed), []byte("notes\n"), 0o644))
			b := &readingBuilder{reads: map[string][]ansibletrace.Read{"web": {
				{Path: "ansible/web.yml", Kind: ansibletrace.File},
				{Path: missed, Kind: ansibletrace.File},
				{Path: "ansible/vars", Kind: ansibletrace.Dir},
			}}}
			p := h.planner(t)
			ex := &build.Executor{Planner: p, Builder: b, Records: h.store, Now: func() time.Time { return h.now }}
			sum, err := ex.Run(context.Background(), h.plan(t, p, ""))
			assert.NilError(t, err)
			assert.Check(t, is.Contains(sum.String(), "web: ansible read "+missed+", which the static analysis did not find\n"))
			assert.Check(t, !strings.Contains(sum.String(), "ansible read ansible/web.yml"), "a statically found file is no news")
			rec, err := h.store.Current(context.Background(), "web")
			assert.NilError(t, err)
			assert.Check(t, is.Len(rec.Reads, 3))

			if tc.change != nil {
				tc.change(t, h.dir)
			}
			pl := h.plan(t, h.planner(t), "")
			if tc.why == "" {
				assert.Check(t, is.DeepEqual(pl.Stale(), []string(nil)))
				return
			}
			assert.Check(t, is.DeepEqual(pl.Stale(), []string{"web"}))
			assert.Check(t, is.Contains(reasons(pl, "web"), tc.why))
			assert.Check(t, statuses(pl)["base"] == plan.UpToDate)
		})
	}
}
