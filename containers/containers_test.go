// Package containers_test builds the tree of amichain.yaml as containers on the real Dagger
// engine: the shipped roles applied for real (converge, idempotence, verify), the third-party
// apt repositories replaced by signed stand-ins (stand-in-apt.sh).
package containers_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/internal/testtool"
)

// tree is a copy of the repository's image sources that a test can edit, and the stand-in apt
// repositories the roles install the agents from.
type tree struct {
	dagger, root, src, apt, git string
}

func newTree(t *testing.T) tree {
	tr := tree{dagger: testtool.Dagger(t), root: testtool.Root(t), src: t.TempDir(), apt: t.TempDir(), git: t.TempDir()}
	for _, f := range []string{"amichain.yaml", "toolchain.env"} {
		data, err := os.ReadFile(filepath.Join(tr.root, f))
		assert.NilError(t, err)
		assert.NilError(t, os.WriteFile(filepath.Join(tr.src, f), data, 0o644))
	}
	for _, d := range []string{"ansible", "packer"} {
		assert.NilError(t, os.CopyFS(filepath.Join(tr.src, d), os.DirFS(filepath.Join(tr.root, d))))
	}
	out, err := exec.Command(filepath.Join(tr.root, "containers", "stand-in-apt.sh"), tr.apt).CombinedOutput()
	assert.NilError(t, err, "stand-in-apt.sh: %s", out)
	return tr
}

// testContainers runs `dagger call test-containers` and returns its combined output (the
// progress too: it says which steps were cached).
func (tr tree) testContainers(t *testing.T, args ...string) (string, error) {
	t.Helper()
	const files = "/run/amichain/files"
	cmd := exec.CommandContext(t.Context(), tr.dagger, append([]string{"--progress=plain", "-m", tr.root, "call",
		// No git metadata: commits are recorded with AMIs only.
		"--source", tr.src, "--git", tr.git,
		"test-containers", "--ansible-files", tr.apt,
		"--ansible-var", "datadog_apt_url=file:" + files + "/datadog",
		"--ansible-var", "datadog_apt_key_url=file://" + files + "/key.asc",
		"--ansible-var", "buildkite_apt_url=file:" + files + "/buildkite",
		"--ansible-var", "buildkite_apt_key_url=file://" + files + "/key.asc",
	}, args...)...)
	out, err := cmd.CombinedOutput()
	return ansiColor.ReplaceAllString(string(out), ""), err
}

var ansiColor = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// edit appends text to a file of the source copy and returns a function that restores it.
func (tr tree) edit(t *testing.T, file, text string) func() {
	t.Helper()
	p := filepath.Join(tr.src, file)
	before, err := os.ReadFile(p)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(p, append(append([]byte{}, before...), text...), 0o644))
	return func() { assert.NilError(t, os.WriteFile(p, before, 0o644)) }
}

var images = []string{"base", "web", "worker", "build-agent", "deploy-agent"}

// TestTree is one sequence, each step starting from the previous one's engine cache.
func TestTree(t *testing.T) {
	tr := newTree(t)

	t.Run("every image converges, is idempotent and verified", func(t *testing.T) {
		out, err := tr.testContainers(t)
		assert.NilError(t, err, out)
		for _, img := range images {
			assert.Check(t, is.Regexp(`(?m)^`+regexp.QuoteMeta(img)+`\s+ok\s+ok\s+ok$`, out))
		}
	})

	t.Run("a new copy of the same sources is cached", func(t *testing.T) {
		out, err := tr.testContainers(t)
		assert.NilError(t, err, out)
		assert.Check(t, is.Len(rebuilt(out), 0))
	})

	t.Run("a web-only role edit rebuilds only web", func(t *testing.T) {
		// A new line each run: the engine's cache outlives the test, and an edit it has seen
		// before is (rightly) served from it.
		defer tr.edit(t, "ansible/roles/nginx/files/app-proxy.conf", "# edited by the test at "+time.Now().Format(time.RFC3339Nano)+"\n")()
		out, err := tr.testContainers(t)
		assert.NilError(t, err, out)
		assert.Check(t, is.Regexp(`(?m)^web\s+ok\s+ok\s+ok$`, out))
		assert.Check(t, is.DeepEqual(rebuilt(out), []string{"web"}), "images whose playbooks ran")
	})

	t.Run("a failing task fails converge, naming the image and the task", func(t *testing.T) {
		defer tr.edit(t, "ansible/roles/nginx/tasks/main.yml", "\n- name: Fail on purpose\n  ansible.builtin.command: /bin/false\n")()
		out, err := tr.testContainers(t, "--images", "web")
		assert.Assert(t, err != nil, out)
		assert.Check(t, is.Contains(out, `image web: converge: task "nginx : Fail on purpose" failed`))
	})

	t.Run("a task that always changes fails idempotence, naming it", func(t *testing.T) {
		defer tr.edit(t, "ansible/roles/nginx/tasks/main.yml", "\n- name: Change on every run\n  ansible.builtin.command: /bin/true\n")()
		out, err := tr.testContainers(t, "--images", "web")
		assert.Assert(t, err != nil, out)
		assert.Check(t, is.Regexp(`image web: idempotence: the second run of ansible/web.yml changed 1 task\(s\), want none: "nginx : Change on every run"`, out))
	})

	t.Run("a failing check fails verify, naming it", func(t *testing.T) {
		defer tr.edit(t, "ansible/verify/worker.yml", "        verify_absent: [/etc/app/app.env]\n")()
		out, err := tr.testContainers(t, "--images", "worker")
		assert.Assert(t, err != nil, out)
		assert.Check(t, is.Contains(out, `image worker: verify: task "Check the files" failed`))
		assert.Check(t, is.Contains(out, "/etc/app/app.env exists"))
	})
}

// rebuilt lists, from plain progress output, the images whose playbook ran rather than came
// from the engine cache.
func rebuilt(out string) []string {
	run := regexp.MustCompile(`^(\d+)\s*: .*withExec env .*ansible-playbook .*/run/amichain/src/ansible/([a-z-]+)\.yml`)
	done := regexp.MustCompile(`^(\d+)\s*: .*Container\.withExec DONE`)
	image := map[string]string{} // progress id -> image
	var images []string
	for _, line := range strings.Split(out, "\n") {
		if m := run.FindStringSubmatch(line); m != nil {
			image[m[1]] = m[2]
		}
		if m := done.FindStringSubmatch(line); m != nil && image[m[1]] != "" && !slices.Contains(images, image[m[1]]) {
			images = append(images, image[m[1]])
		}
	}
	sort.Strings(images)
	return images
}
