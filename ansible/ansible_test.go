package ansible_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/core/ansibletrace"
	"github.com/amichain/amichain/core/fingerprint"
	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/internal/testtool"
)

// images are the playbooks of amichain.yaml's images; each has a verify playbook.
var images = []string{"base", "web", "worker", "build-agent", "deploy-agent"}

func TestSyntax(t *testing.T) {
	bin := testtool.Find(t, "ansible-playbook")
	for _, img := range images {
		for _, playbook := range []string{img + ".yml", "verify/" + img + ".yml"} {
			t.Run(playbook, func(t *testing.T) {
				t.Parallel()
				out, err := run(t.Context(), t, bin, "-i", "localhost,", "--syntax-check", playbook)
				assert.NilError(t, err, out)
			})
		}
	}
}

// TestRefusesBuildTimeSecret passes a secret the way a careless build would and checks that the
// playbook fails, says which variable to remove, and never shows the value. It runs in check
// mode on this machine, starting at the check: nothing is changed even if the check broke.
// (The roles themselves are applied for real in containers: see containers/.)
func TestRefusesBuildTimeSecret(t *testing.T) {
	bin := testtool.Find(t, "ansible-playbook")
	const secret = "sentinel-0f3c9a7e51d2"
	tests := []struct {
		image, variable, task string
	}{
		{image: "base", variable: "datadog_api_key", task: "Refuse a Datadog API key at image-build time"},
		{image: "build-agent", variable: "buildkite_agent_token", task: "Refuse an agent token at image-build time"},
	}
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			t.Parallel()
			out, err := run(t.Context(), t, bin, "-i", "localhost,", "-c", "local", "--check",
				"-e", "image_name="+tc.image, "-e", tc.variable+"="+secret, "--start-at-task", tc.task, tc.image+".yml")
			assert.Assert(t, !strings.Contains(out, secret), "the output shows the secret")
			assert.Assert(t, err != nil, "the playbook accepted %s:\n%s", tc.variable, out)
			assert.Check(t, is.Contains(out, tc.variable+" is set, but an image must never contain"))
		})
	}
}

// run runs ansible-playbook with its state (temp files, caches) in a test directory, so that
// nothing outside the test's directories changes.
func run(ctx context.Context, t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"ANSIBLE_HOME="+home,
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(home, "tmp"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(home, "remote-tmp"),
		"ANSIBLE_NOCOLOR=1",
		// Fewer processes per task: about a fifth faster.
		"ANSIBLE_PIPELINING=1",
		"ANSIBLE_RETRY_FILES_ENABLED=0",
	)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestShippedReadsAreInputs loads every image's playbook and checks with the real
// ansible-playbook, under the audit hook, that each file it reads while loading (plays, roles,
// task and vars files, verify playbooks) is an input of the image's fingerprint. The files its
// tasks read when they run (templates, files) are proven by the container target, which mounts
// only the fingerprint's files.
func TestShippedReadsAreInputs(t *testing.T) {
	bin := testtool.Find(t, "ansible-playbook")
	root := testtool.Root(t)
	tr, err := tree.Load(os.DirFS(root), tree.DefaultPath)
	assert.NilError(t, err)
	h := fingerprint.NewHasher(os.DirFS(root))
	env, err := ansibletrace.Install(t.TempDir(), os.Environ())
	assert.NilError(t, err)
	for _, img := range tr.Images {
		t.Run(img.Name, func(t *testing.T) {
			t.Parallel()
			files, err := h.Files(img)
			assert.NilError(t, err)
			inputs := map[string]bool{}
			for _, f := range files {
				inputs[f] = true
			}
			var reads ansibletrace.Reads
			for _, playbook := range []string{img.Playbook, img.Verify} {
				if playbook == "" {
					continue
				}
				cmd := exec.CommandContext(t.Context(), bin, "-i", "localhost,", "--list-tasks", "-e", "image_name="+img.Name, playbook)
				cmd.Dir = root // where Packer runs Ansible
				home := t.TempDir()
				cmd.Env = append(append(os.Environ(), env...), "ANSIBLE_HOME="+home, "ANSIBLE_LOCAL_TEMP="+filepath.Join(home, "tmp"))
				out, err := cmd.CombinedOutput()
				assert.NilError(t, err, "%s", out)
				for _, line := range strings.Split(string(out), "\n") {
					reads.Line(line)
				}
			}
			var n int
			for _, r := range reads.List() {
				if r.Kind != ansibletrace.File {
					continue
				}
				n++
				assert.Check(t, inputs[r.Path], "ansible-playbook read %s for %s, which is not an input of its fingerprint", r.Path, img.Name)
			}
			assert.Assert(t, n > 2, "the hook saw only %d reads: is it loaded?", n)
			t.Logf("%s: %d files read, all inputs (%d inputs)", img.Name, n, len(inputs))
		})
	}
}
