// Package e2e builds the real five-image tree with the real Packer, its amazon and ansible
// plugins and real Ansible over SSH, against the local EC2 API, with records in S3.
package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/internal/e2eenv"
	"github.com/amichain/amichain/internal/repotest"
	"github.com/amichain/amichain/internal/testtool"
)

const (
	baseRole   = "ansible/roles/common/tasks/main.yml"
	workerRole = "ansible/roles/app_worker/tasks/main.yml"
	webRole    = "ansible/roles/nginx/tasks/main.yml"
)

var children = []string{"web", "worker", "build-agent", "deploy-agent"}

// counting counts the Packer runs a build makes.
type counting struct {
	build.Builder
	n atomic.Int32
}

func (c *counting) Build(ctx context.Context, req build.Request) (build.Result, error) {
	c.n.Add(1)
	return c.Builder.Build(ctx, req)
}

type result struct {
	sum    build.Summary
	err    error
	runs   int
	wall   time.Duration
	status map[string]build.Status
}

// buildClone builds from a fresh clone of the repository, as a new CI machine would.
func buildClone(ctx context.Context, t *testing.T, e *e2eenv.Env, force ...string) result {
	t.Helper()
	dir := e.Clone(t)
	log := &testtool.Output{} // Packer's log, for a failure message
	b := &counting{Builder: e.Runner(t, dir, log)}
	start := time.Now()
	r, err := e.Load(ctx, t, dir, b, force...)
	assert.NilError(t, err)
	sum, err := r.Build(ctx, "")
	res := result{sum: sum, err: err, runs: int(b.n.Load()), wall: time.Since(start), status: map[string]build.Status{}}
	for _, o := range sum.Outcomes {
		res.status[o.Image] = o.Status
	}
	t.Logf("%d Packer runs, %s\n%s", res.runs, res.wall.Round(time.Millisecond), sum)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Packer log:\n%s", tail(log.String(), 200))
		}
	})
	return res
}

func tail(s string, lines int) string {
	n := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			if n++; n > lines {
				return s[i+1:]
			}
		}
	}
	return s
}

func only(status build.Status, names ...string) map[string]build.Status {
	out := map[string]build.Status{}
	for _, n := range append([]string{"base"}, children...) {
		out[n] = build.UpToDate
	}
	for _, n := range names {
		out[n] = status
	}
	return out
}

func all(s build.Status) map[string]build.Status {
	return only(s, append([]string{"base"}, children...)...)
}

func currentAMI(t *testing.T, e *e2eenv.Env, image string) string {
	rec, err := e.Store.Current(t.Context(), image)
	assert.NilError(t, err)
	if rec == nil {
		return ""
	}
	return rec.AMI()
}

func TestPackerEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end Packer builds are slow")
	}
	e := e2eenv.Start(t)
	ctx := t.Context()

	// 1. The whole tree, parents first, each child from its parent's new AMI.
	res := buildClone(ctx, t, e)
	assert.NilError(t, res.err)
	assert.DeepEqual(t, res.status, all(build.Built))
	assert.Equal(t, res.runs, 5)
	launches := e.EC2.Launches()
	assert.Equal(t, len(launches), 5)
	assert.Equal(t, launches[0].ImageID, e2eenv.UpstreamAMI, "base is built from the newest upstream image")
	baseAMI := currentAMI(t, e, "base")
	for _, l := range launches[1:] {
		assert.Check(t, is.Equal(l.ImageID, baseAMI), "child launched from %s, want base's new AMI", l.ImageID)
	}
	for _, img := range e.EC2.Images() {
		if img.Tags["amichain:image"] != "" {
			assert.Check(t, img.Tags["amichain:fingerprint"] != "")
		}
	}
	t.Logf("FIGURE full build: %s, %d Packer runs", res.wall.Round(time.Second), res.runs)

	// 2. A fresh clone on a new machine builds nothing.
	res = buildClone(ctx, t, e)
	assert.NilError(t, res.err)
	assert.DeepEqual(t, res.status, all(build.UpToDate))
	assert.Equal(t, res.runs, 0)
	t.Logf("FIGURE no-op run: %s, %d Packer runs", res.wall.Round(time.Millisecond), res.runs)

	// 3. A role only worker uses: only worker.
	repotest.Append(t, e.Repo, workerRole, "# tuned\n")
	e.Commit(t, "tune worker")
	res = buildClone(ctx, t, e)
	assert.NilError(t, res.err)
	assert.DeepEqual(t, res.status, only(build.Built, "worker"))
	assert.Equal(t, res.runs, 1)

	// 4. A base role: all five, children from the new base.
	before := map[string]string{}
	for _, n := range append([]string{"base"}, children...) {
		before[n] = currentAMI(t, e, n)
	}
	repotest.Append(t, e.Repo, baseRole, "# hardened\n")
	e.Commit(t, "harden base")
	res = buildClone(ctx, t, e)
	assert.NilError(t, res.err)
	assert.DeepEqual(t, res.status, all(build.Built))
	assert.Equal(t, res.runs, 5)

	// 5. Reverting it rebuilds nothing: the index has the AMIs built for those inputs.
	e.Git(t, e.Repo, "revert", "--no-edit", "HEAD")
	res = buildClone(ctx, t, e)
	assert.NilError(t, res.err)
	assert.DeepEqual(t, res.status, all(build.Reused))
	assert.Equal(t, res.runs, 0)
	for n, ami := range before {
		assert.Check(t, is.Equal(currentAMI(t, e, n), ami), n)
	}

	// 6. A failing Ansible task fails its image and its descendants, with Ansible's error,
	// and records nothing for them. The task goes first in the role, so the run fails fast.
	for _, tc := range []struct {
		file    string
		want    map[string]build.Status
		failing string
	}{
		{file: webRole, failing: "web", want: only(build.Failed, "web")},
		{file: baseRole, failing: "base", want: func() map[string]build.Status {
			m := only(build.Skipped, children...)
			m["base"] = build.Failed
			return m
		}()},
	} {
		prependTask(t, e.Repo, tc.file, "- name: Fail on purpose\n  ansible.builtin.fail:\n    msg: e2e-broken-task\n")
		e.Commit(t, "break "+tc.failing)
		res = buildClone(ctx, t, e)
		assert.ErrorContains(t, res.err, "e2e-broken-task")
		assert.ErrorContains(t, res.err, tc.failing+": packer build "+tc.failing+" failed")
		assert.DeepEqual(t, res.status, tc.want)
		assert.Equal(t, res.runs, 1)
		for n, ami := range before {
			assert.Check(t, is.Equal(currentAMI(t, e, n), ami), "%s: a failed run must not change records", n)
		}
		e.Git(t, e.Repo, "revert", "--no-edit", "HEAD")
	}

	// 7. Killing a build midway records nothing; the next run finishes the job.
	repotest.Append(t, e.Repo, workerRole, "# patched\n")
	e.Commit(t, "patch worker")
	launched := len(e.EC2.Launches())
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		for len(e.EC2.Launches()) == launched && cctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(3 * time.Second) // let Packer get into the build
		cancel()
	}()
	res = buildClone(cctx, t, e)
	cancel()
	assert.ErrorIs(t, res.err, context.Canceled)
	assert.Equal(t, res.status["worker"], build.Failed)
	for n, ami := range before {
		assert.Check(t, is.Equal(currentAMI(t, e, n), ami), "%s: a cancelled run must not change records", n)
	}
	assert.Assert(t, slices.Contains(e.EC2.Calls(), "TerminateInstances"))
	res = buildClone(ctx, t, e)
	assert.NilError(t, res.err)
	assert.DeepEqual(t, res.status, only(build.Built, "worker"))
}

// prependTask puts task first in a task file, after its "---" line.
func prependTask(t *testing.T, repo, rel, task string) {
	p := filepath.Join(repo, rel)
	data, err := os.ReadFile(p)
	assert.NilError(t, err)
	body, found := strings.CutPrefix(string(data), "---\n")
	assert.Assert(t, found, "%s does not start with ---", rel)
	assert.NilError(t, os.WriteFile(p, []byte("---\n"+task+"\n"+body), 0o644))
}
