// Package e2e builds the five-image tree the way production does: `dagger call` on the module
// in the real engine, Packer with its real plugins in the module's toolchain container, Ansible
// over SSH, against the local EC2 API, with records in S3.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/internal/e2eenv"
	"github.com/amichain/amichain/internal/repotest"
)

const (
	baseRole   = "ansible/roles/common/tasks/main.yml"
	workerRole = "ansible/roles/worker_app/tasks/main.yml"
	webRole    = "ansible/roles/web_app/tasks/main.yml"
)

var images = []string{"base", "web", "worker", "build-agent", "deploy-agent"}

// row matches one line of the result table: IMAGE RESULT AMI WHY.
var row = regexp.MustCompile(`(?m)^(base|web|worker|build-agent|deploy-agent)[ \t]+(up to date|reuse|built|failed|skipped|stale)[ \t]+(\S+)[ \t]*(.*)$`)

// statuses reads the table in out: image -> status.
func statuses(out string) map[string]string {
	got := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(out, -1) {
		got[m[1]] = m[2]
	}
	return got
}

// only is every image up to date but names, which have status.
func only(status string, names ...string) map[string]string {
	out := map[string]string{}
	for _, n := range images {
		out[n] = "up to date"
	}
	for _, n := range names {
		out[n] = status
	}
	return out
}

func all(status string) map[string]string { return only(status, images...) }

func currentAMI(t *testing.T, e *e2eenv.Env, image string) string {
	rec, err := e.Store.Current(t.Context(), image)
	assert.NilError(t, err)
	if rec == nil {
		return ""
	}
	return rec.AMI()
}

// records is every image's current AMI; each SSM parameter must say the same.
func records(t *testing.T, e *e2eenv.Env) map[string]string {
	out := map[string]string{}
	for _, n := range images {
		out[n] = currentAMI(t, e, n)
		p, ok := e.SSM.Get(e2eenv.Region, "/amichain/"+n)
		assert.Check(t, ok && p.Value == out[n], "SSM /amichain/%s = %q, the record says %s", n, p.Value, out[n])
	}
	return out
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end builds are slow")
	}
	fixtures, err := filepath.Abs(filepath.Join("testdata", "ansible"))
	assert.NilError(t, err)
	e := e2eenv.Start(t, fixtures)
	ctx := t.Context()
	// buildAll runs build-all from a fresh clone, as a new CI machine would.
	buildAll := func(ctx context.Context, flags ...string) (e2eenv.Output, error) {
		return e.Call(ctx, t, e.Clone(t), flags, "build-all", "table")
	}

	// 1. The whole tree, parents first, each child from its parent's new AMI.
	out, err := buildAll(ctx)
	assert.NilError(t, err)
	assert.DeepEqual(t, statuses(out.Stdout), all("built"))
	assert.Check(t, is.Contains(out.Stdout, "5 built, 0 reuse, 0 up to date, 0 failed, 0 skipped\n"))
	launches := e.EC2.Launches()
	assert.Equal(t, len(launches), 5)
	assert.Equal(t, launches[0].ImageID, e2eenv.UpstreamAMI, "base is built from the newest upstream image")
	baseAMI := currentAMI(t, e, "base")
	for _, l := range launches[1:] {
		assert.Check(t, is.Equal(l.ImageID, baseAMI), "child launched from %s, want base's new AMI", l.ImageID)
	}
	for _, n := range images {
		data, err := os.ReadFile(filepath.Join(e.Scratch, n, map[string]string{
			"base": "common", "web": "web_app", "worker": "worker_app", "build-agent": "agent", "deploy-agent": "agent",
		}[n]+".txt"))
		assert.Check(t, err, "Ansible did not provision %s", n)
		assert.Check(t, is.Contains(string(data), "applied to "+n))
	}
	// What Ansible read in the toolchain container was all found statically, and is recorded.
	assert.Check(t, !strings.Contains(out.Stdout, "which the static analysis did not find"))
	rec, err := e.Store.Current(ctx, "web")
	assert.NilError(t, err)
	assert.Check(t, len(rec.Reads) > 0, "the web record holds no reads: the audit hook did not run")
	records(t, e) // the SSM parameters
	t.Logf("FIGURE full build: %s", out.Wall.Round(time.Second))

	// 2. A fresh clone on a new machine builds nothing.
	out, err = buildAll(ctx)
	assert.NilError(t, err)
	assert.DeepEqual(t, statuses(out.Stdout), all("up to date"))
	assert.Equal(t, len(e.EC2.Launches()), 5)
	t.Logf("FIGURE no-op build-all: %s", out.Wall.Round(time.Millisecond))

	// ids lists the records; an image's ami is its record's, without a build.
	src := e.Clone(t)
	out, err = e.Call(ctx, t, src, nil, "ids")
	assert.NilError(t, err)
	assert.Check(t, is.Contains(out.Stdout, baseAMI))
	out, err = e.Call(ctx, t, src, nil, "image", "--name", "web", "ami")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(out.Stdout, currentAMI(t, e, "web")+"\n"))

	// An image older than --max-age is built again, though nothing changed: Packer really runs
	// (a build is never answered from the engine's cache) and makes new AMIs.
	time.Sleep(time.Second)
	launched := len(e.EC2.Launches())
	out, err = buildAll(ctx, "--max-age", "1s")
	assert.NilError(t, err)
	assert.DeepEqual(t, statuses(out.Stdout), all("built"))
	assert.Equal(t, len(e.EC2.Launches()), launched+5)
	assert.Check(t, currentAMI(t, e, "base") != baseAMI, "max-age must make a new base AMI")

	// 3. A role only worker uses: plan names the file, only worker is built.
	repotest.Append(t, e.Repo, workerRole, "# tuned\n")
	e.Commit(t, "tune worker")
	out, err = e.Call(ctx, t, e.Clone(t), nil, "plan", "table")
	assert.NilError(t, err)
	assert.DeepEqual(t, statuses(out.Stdout), only("stale", "worker"))
	assert.Check(t, is.Contains(out.Stdout, workerRole+" changed"))
	out, err = buildAll(ctx)
	assert.NilError(t, err)
	assert.DeepEqual(t, statuses(out.Stdout), only("built", "worker"))
	assert.Equal(t, len(e.EC2.Launches()), launched+6)

	// 4. A base role: all five, children from the new base. 5. Reverting it builds nothing:
	// the index has the AMIs built from those inputs.
	before := records(t, e)
	repotest.Append(t, e.Repo, baseRole, "# hardened\n")
	e.Commit(t, "harden base")
	out, err = buildAll(ctx)
	assert.NilError(t, err)
	assert.DeepEqual(t, statuses(out.Stdout), all("built"))
	e.Git(t, e.Repo, "revert", "--no-edit", "HEAD")
	launched = len(e.EC2.Launches())
	out, err = buildAll(ctx)
	assert.NilError(t, err)
	assert.DeepEqual(t, statuses(out.Stdout), all("reuse"))
	assert.Equal(t, len(e.EC2.Launches()), launched)
	assert.DeepEqual(t, records(t, e), before)

	// 6. A failing Ansible task fails its image and its descendants, with Ansible's error in
	// the table, and records nothing for them.
	breakTask := func(file string) func() {
		return func() {
			prependTask(t, e.Repo, file, "- name: Fail on purpose\n  ansible.builtin.fail:\n    msg: e2e-broken-task\n")
		}
	}
	for _, tc := range []struct {
		name, failing, want string
		edit                func()
		statuses            map[string]string
	}{
		{name: "web task", failing: "web", want: "e2e-broken-task", edit: breakTask(webRole), statuses: only("failed", "web")},
		{name: "base task", failing: "base", want: "e2e-broken-task", edit: breakTask(baseRole), statuses: func() map[string]string {
			m := only("skipped", images[1:]...)
			m["base"] = "failed"
			return m
		}()},
		// The image's checks run on the instance before its AMI is made: no AMI, no record.
		{name: "web check", failing: "web", want: "missing.txt is missing", statuses: only("failed", "web"), edit: func() {
			p := filepath.Join(e.Repo, "ansible", "verify", "web.yml")
			data, err := os.ReadFile(p)
			assert.NilError(t, err)
			assert.NilError(t, os.WriteFile(p, []byte(strings.ReplaceAll(string(data), "web_app.txt", "missing.txt")), 0o644))
		}},
	} {
		t.Log("6. failing:", tc.name)
		tc.edit()
		e.Commit(t, "break "+tc.name)
		amis := len(e.EC2.Images())
		out, err = buildAll(ctx)
		assert.Assert(t, err != nil, "build-all must fail")
		failure := out.Failure()
		assert.DeepEqual(t, statuses(failure), tc.statuses)
		assert.Check(t, is.Contains(failure, "packer build "+tc.failing+" failed"))
		assert.Check(t, is.Contains(failure, tc.want))
		assert.Check(t, is.Equal(len(e.EC2.Images()), amis), "a failed build makes no AMI")
		assert.Check(t, is.Equal(strings.Count(failure, " failed, "), 1), "the summary line appears once")
		assert.DeepEqual(t, records(t, e), before)
		e.Git(t, e.Repo, "revert", "--no-edit", "HEAD")
	}

	// 7. Cancelling build-all midway (SIGINT as GitHub Actions does, SIGTERM as Buildkite does)
	// records nothing. The engine ends Packer with the session, so its builder instance is left
	// running: the next build-all finds it by its tags, and once the killed run's build lease
	// has run out (it is not renewed any more), removes it and says so, then builds what was
	// left.
	for i, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Log("7. cancelled with", sig)
		e.Cancel = sig
		before = records(t, e)
		repotest.Append(t, e.Repo, workerRole, fmt.Sprintf("# patched %d\n", i))
		e.Commit(t, "patch worker")
		prependTask(t, e.Repo, workerRole, "- name: Take a while\n  ansible.builtin.command: sleep 300\n  changed_when: false\n")
		e.Commit(t, "slow worker")
		launched = len(e.EC2.Launches())
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			for len(e.EC2.Launches()) == launched && cctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(5 * time.Second) // let Packer get into the build
			cancel()
		}()
		_, err = buildAll(cctx)
		cancel()
		assert.Assert(t, err != nil, "a cancelled build-all must fail")
		assert.DeepEqual(t, records(t, e), before)
		leaked := e.EC2.Running()
		t.Logf("FIGURE builder instances left running by the run cancelled with %s: %v", sig, leaked)
		e.Git(t, e.Repo, "revert", "--no-edit", "HEAD")
		time.Sleep(e2eenv.LeaseTTL)
		out, err = buildAll(ctx)
		assert.NilError(t, err)
		assert.DeepEqual(t, statuses(out.Stdout), only("built", "worker"))
		for _, id := range leaked {
			assert.Check(t, is.Contains(out.Stdout, id), "the sweep reports the leftover")
		}
		assert.DeepEqual(t, e.EC2.Running(), []string(nil))
	}
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
