package build_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/fingerprint"
	"github.com/amichain/amichain/core/plan"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/toolchain"
	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/internal/repotest"
	"github.com/amichain/amichain/internal/s3test"
)

const upstreamAMI = "ami-0aaaaaaaaaaaa0001"

// testBuilder hands out fresh AMI ids, remembers what it was asked and in which order, and
// fails or waits where a test says so.
type testBuilder struct {
	fail  map[string]error
	sleep time.Duration
	slow  map[string]time.Duration // per-image sleep, overriding sleep

	mu     sync.Mutex
	calls  []build.Request
	starts map[string]time.Time
	ends   map[string]time.Time
}

func (b *testBuilder) Build(ctx context.Context, req build.Request) (build.Result, error) {
	b.mu.Lock()
	b.calls = append(b.calls, req)
	if b.starts == nil {
		b.starts, b.ends = map[string]time.Time{}, map[string]time.Time{}
	}
	b.starts[req.Image.Name] = time.Now()
	b.mu.Unlock()
	sleep := b.sleep
	if d, ok := b.slow[req.Image.Name]; ok {
		sleep = d
	}
	select {
	case <-time.After(sleep):
	case <-ctx.Done():
		return build.Result{}, ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ends[req.Image.Name] = time.Now()
	if err := b.fail[req.Image.Name]; err != nil {
		return build.Result{}, err
	}
	// Random ids: AMI ids are unique across runs, and a reused id would make a child look built.
	return build.Result{Region: "us-east-1", AMIs: map[string]string{
		"us-east-1": fmt.Sprintf("ami-%017x", rand.Int64N(1<<60)),
		"eu-west-1": fmt.Sprintf("ami-%017x", rand.Int64N(1<<60)),
	}}, nil
}

func (b *testBuilder) built() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, c := range b.calls {
		out = append(out, c.Image.Name)
	}
	return out
}

// harness is a scratch copy of the repository's image sources and a real S3 record store.
type harness struct {
	dir      string
	store    *record.Store
	upstream string
	now      time.Time
}

func newHarness(t *testing.T) *harness {
	srv := s3test.StartFake(t)
	return &harness{
		dir:      repotest.Copy(t),
		store:    record.NewStore(srv.Client, record.Config{Bucket: srv.Bucket, Prefix: "amichain"}),
		upstream: upstreamAMI,
		now:      time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
	}
}

func (h *harness) planner(t *testing.T, force ...string) *plan.Planner {
	fsys := os.DirFS(h.dir)
	tr, err := tree.Load(fsys, tree.DefaultPath)
	assert.NilError(t, err)
	tools, err := toolchain.Load(fsys, toolchain.DefaultPath)
	assert.NilError(t, err)
	forced := map[string]bool{}
	for _, f := range force {
		forced[f] = true
	}
	return &plan.Planner{
		Tree: tr, Hasher: fingerprint.NewHasher(fsys), Records: h.store, Tools: tools,
		Force: forced, Now: func() time.Time { return h.now },
	}
}

func (h *harness) plan(t *testing.T, p *plan.Planner, only string) *plan.Plan {
	pl, err := p.Plan(context.Background(), h.upstream, only)
	assert.NilError(t, err)
	return pl
}

func (h *harness) run(t *testing.T, b *testBuilder, force ...string) (build.Summary, error) {
	p := h.planner(t, force...)
	ex := &build.Executor{Planner: p, Builder: b, Records: h.store, Parallel: 4,
		Commit: "abc123", Branch: "main", Now: func() time.Time { return h.now }}
	return ex.Run(context.Background(), h.plan(t, p, ""))
}

func statuses(p *plan.Plan) map[string]plan.Status {
	out := map[string]plan.Status{}
	for _, s := range p.Steps {
		out[s.Image.Name] = s.Status
	}
	return out
}

func reasons(p *plan.Plan, name string) string {
	for _, s := range p.Steps {
		if s.Image.Name == name {
			return strings.Join(s.Reasons, "; ")
		}
	}
	return ""
}

var all = []string{"base", "web", "worker", "build-agent", "deploy-agent"}

func TestPlanAfterEdits(t *testing.T) {
	const (
		webOnly    = "ansible/roles/nginx/templates/app.conf.j2"
		workerOnly = "ansible/roles/app_worker/tasks/main.yml"
		baseRole   = "ansible/roles/common/tasks/main.yml"
	)
	tests := []struct {
		name    string
		change  func(t *testing.T, h *harness)
		force   []string
		stale   []string
		reasons map[string]string
	}{
		{name: "nothing changed"},
		{
			name:    "role used only by web",
			change:  func(t *testing.T, h *harness) { repotest.Append(t, h.dir, webOnly, "# edited\n") },
			stale:   []string{"web"},
			reasons: map[string]string{"web": webOnly + " changed"},
		},
		{
			name:    "role used only by worker",
			change:  func(t *testing.T, h *harness) { repotest.Append(t, h.dir, workerOnly, "# edited\n") },
			stale:   []string{"worker"},
			reasons: map[string]string{"worker": workerOnly + " changed"},
		},
		{
			name:   "role used by base",
			change: func(t *testing.T, h *harness) { repotest.Append(t, h.dir, baseRole, "# edited\n") },
			stale:  all,
			reasons: map[string]string{
				"base": baseRole + " changed",
				"web":  "parent base will be rebuilt",
			},
		},
		{
			name:    "new upstream release",
			change:  func(t *testing.T, h *harness) { h.upstream = "ami-0aaaaaaaaaaaa0002" },
			stale:   all,
			reasons: map[string]string{"base": "parent AMI changed", "worker": "parent base will be rebuilt"},
		},
		{
			name:    "pinned tool version",
			change:  func(t *testing.T, h *harness) { repotest.Append(t, h.dir, "toolchain.env", "EXTRA_VERSION=1\n") },
			stale:   all,
			reasons: map[string]string{"base": "added"},
		},
		{
			name:    "forced",
			force:   []string{"worker"},
			stale:   []string{"worker"},
			reasons: map[string]string{"worker": "forced"},
		},
		{
			name:    "older than the maximum age",
			change:  func(t *testing.T, h *harness) { h.now = h.now.Add(31 * 24 * time.Hour) },
			stale:   all,
			reasons: map[string]string{"base": "older than the maximum age 720h0m0s"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			_, err := h.run(t, &testBuilder{})
			assert.NilError(t, err)
			if tc.change != nil {
				tc.change(t, h)
			}
			p := h.planner(t, tc.force...)
			p.MaxAge = 30 * 24 * time.Hour
			pl := h.plan(t, p, "")
			assert.DeepEqual(t, pl.Names(), all)
			want := map[string]plan.Status{}
			for _, n := range all {
				want[n] = plan.UpToDate
			}
			for _, n := range tc.stale {
				want[n] = plan.Stale
			}
			assert.DeepEqual(t, statuses(pl), want)
			for name, why := range tc.reasons {
				assert.Check(t, is.Contains(reasons(pl, name), why), name)
			}
		})
	}
}

func TestFirstRunBuildsParentsFirstFromTheirNewAMI(t *testing.T) {
	h := newHarness(t)
	pl := h.plan(t, h.planner(t), "")
	for _, n := range all {
		assert.Check(t, is.Contains(reasons(pl, n), "no record"), n)
	}
	b := &testBuilder{}
	sum, err := h.run(t, b)
	assert.NilError(t, err)
	assert.Equal(t, sum.Count(build.Built), 5)
	calls := b.calls
	assert.Equal(t, calls[0].Image.Name, "base")
	assert.Equal(t, calls[0].ParentAMI, upstreamAMI)
	baseAMI := sum.Outcomes[0].AMI()
	for _, c := range calls[1:] {
		assert.Check(t, is.Equal(c.ParentAMI, baseAMI), c.Image.Name)
		assert.Check(t, b.starts[c.Image.Name].After(b.ends["base"]) || b.starts[c.Image.Name].Equal(b.ends["base"]))
	}

	rec, err := h.store.Current(context.Background(), "web")
	assert.NilError(t, err)
	assert.Equal(t, rec.ParentAMI, baseAMI)
	assert.Equal(t, rec.Parent, "base")
	assert.Equal(t, rec.Commit, "abc123")
	assert.Equal(t, len(rec.AMIs), 2)

	// A second run (as from a fresh clone: nothing but S3 is shared) builds nothing.
	b2 := &testBuilder{}
	sum, err = h.run(t, b2)
	assert.NilError(t, err)
	assert.Equal(t, len(b2.calls), 0)
	assert.Equal(t, sum.Count(build.UpToDate), 5)
}

func TestRevertReusesTheAMIsBuiltBefore(t *testing.T) {
	h := newHarness(t)
	_, err := h.run(t, &testBuilder{})
	assert.NilError(t, err)
	before := currentAMIs(t, h)

	const baseRole = "ansible/roles/common/tasks/main.yml"
	orig, err := os.ReadFile(h.dir + "/" + baseRole)
	assert.NilError(t, err)
	repotest.Append(t, h.dir, baseRole, "# edited\n")
	b := &testBuilder{}
	_, err = h.run(t, b)
	assert.NilError(t, err)
	assert.Equal(t, len(b.calls), 5)

	assert.NilError(t, os.WriteFile(h.dir+"/"+baseRole, orig, 0o644))
	pl := h.plan(t, h.planner(t), "")
	assert.Equal(t, statuses(pl)["base"], plan.Reuse)
	assert.Check(t, is.Contains(reasons(pl, "base"), "reusing "+before["base"]))
	// The children still wait for base: they are decided once its AMI is back.
	b = &testBuilder{}
	sum, err := h.run(t, b)
	assert.NilError(t, err)
	assert.Equal(t, len(b.calls), 0, "a revert must rebuild nothing, built %v", b.built())
	assert.Equal(t, sum.Count(build.Reused), 5)
	assert.DeepEqual(t, currentAMIs(t, h), before)
}

func currentAMIs(t *testing.T, h *harness) map[string]string {
	recs, err := h.store.List(context.Background())
	assert.NilError(t, err)
	out := map[string]string{}
	for _, r := range recs {
		out[r.Image] = r.AMI()
	}
	return out
}

func TestFailureStopsDescendantsNotSiblings(t *testing.T) {
	tests := []struct {
		name    string
		fail    string
		built   []string
		failed  []string
		skipped []string
	}{
		{name: "base fails", fail: "base", failed: []string{"base"},
			skipped: []string{"web", "worker", "build-agent", "deploy-agent"}},
		{name: "a leaf fails", fail: "worker", failed: []string{"worker"},
			built: []string{"base", "web", "build-agent", "deploy-agent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			b := &testBuilder{fail: map[string]error{tc.fail: errors.New("ansible task failed: fatal: [default]")}}
			sum, err := h.run(t, b)
			assert.ErrorContains(t, err, tc.fail+": ansible task failed")
			byStatus := map[build.Status][]string{}
			for _, o := range sum.Outcomes {
				byStatus[o.Status] = append(byStatus[o.Status], o.Image)
			}
			assert.DeepEqual(t, byStatus[build.Built], tc.built)
			assert.DeepEqual(t, byStatus[build.Failed], tc.failed)
			assert.DeepEqual(t, byStatus[build.Skipped], tc.skipped)
			for _, n := range append(tc.failed, tc.skipped...) {
				rec, err := h.store.Current(context.Background(), n)
				assert.NilError(t, err)
				assert.Check(t, rec == nil, "%s: no record may be written for a failed or skipped image", n)
			}
			assert.Check(t, is.Contains(sum.String(), "failed"))

			// The next run finishes the job.
			b2 := &testBuilder{}
			_, err = h.run(t, b2)
			assert.NilError(t, err)
			assert.Equal(t, len(b2.calls), len(tc.failed)+len(tc.skipped))
		})
	}
}

func TestOnlyBuildsTheImageAndItsStaleAncestors(t *testing.T) {
	h := newHarness(t)
	p := h.planner(t)
	pl := h.plan(t, p, "deploy-agent")
	assert.DeepEqual(t, pl.Names(), []string{"base", "deploy-agent"})
	b := &testBuilder{}
	ex := &build.Executor{Planner: p, Builder: b, Records: h.store}
	_, err := ex.Run(context.Background(), pl)
	assert.NilError(t, err)
	assert.DeepEqual(t, b.built(), []string{"base", "deploy-agent"})

	_, err = p.Plan(context.Background(), h.upstream, "db")
	assert.ErrorContains(t, err, `unknown image "db"`)

	// A misspelt --force says which names would do.
	p.Force = map[string]bool{"wbe": true}
	_, err = p.Plan(context.Background(), h.upstream, "")
	assert.ErrorContains(t, err, "--force wbe: no such image in amichain.yaml; the images are base, web, worker, build-agent, deploy-agent")
}

func TestCancelledRunRecordsNothing(t *testing.T) {
	h := newHarness(t)
	p := h.planner(t)
	ctx, cancel := context.WithCancel(context.Background())
	b := &testBuilder{sleep: 10 * time.Second}
	ex := &build.Executor{Planner: p, Builder: b, Records: h.store}
	go func() {
		for len(b.built()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	sum, err := ex.Run(ctx, h.plan(t, p, ""))
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, sum.Count(build.Failed), 1)
	recs, err := h.store.List(context.Background())
	assert.NilError(t, err)
	assert.Equal(t, len(recs), 0)
}

func TestChildStartsAsSoonAsItsOwnParentIsDone(t *testing.T) {
	h := newHarness(t)
	// canary is built FROM worker; web is slow. Level by level, canary would wait for web.
	repotest.Append(t, h.dir, "amichain.yaml",
		"  - name: canary\n    parent: worker\n    template: packer/image.pkr.hcl\n    playbook: ansible/worker.yml\n")
	b := &testBuilder{sleep: 10 * time.Millisecond, slow: map[string]time.Duration{"web": 3 * time.Second}}
	_, err := h.run(t, b)
	assert.NilError(t, err)
	assert.Assert(t, b.starts["canary"].Before(b.ends["web"]), "canary started %s, web ended %s",
		b.starts["canary"].Format(time.StampMilli), b.ends["web"].Format(time.StampMilli))
	assert.Assert(t, !b.starts["canary"].Before(b.ends["worker"]))
}

func TestParallelIsABound(t *testing.T) {
	h := newHarness(t)
	b := &testBuilder{sleep: 200 * time.Millisecond}
	p := h.planner(t)
	ex := &build.Executor{Planner: p, Builder: b, Records: h.store, Parallel: 2}
	_, err := ex.Run(context.Background(), h.plan(t, p, ""))
	assert.NilError(t, err)
	// Never more than two builds at once: count overlaps at every start.
	for name, start := range b.starts {
		running := 0
		for other, s := range b.starts {
			if other != name && !s.After(start) && b.ends[other].After(start) {
				running++
			}
		}
		assert.Check(t, running < 2, "%s started while %d others ran", name, running)
	}
}
