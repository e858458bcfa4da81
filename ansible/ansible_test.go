package ansible_test

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

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

// TestNoTestMode: product files carry no test scaffolding (a path prefix, a tag tests skip, a
// guard on skipped tags). Overrides are plain variables with real defaults.
func TestNoTestMode(t *testing.T) {
	scaffolding := regexp.MustCompile(`amichain_root|ansible_skip_tags|tags:\s*\[?\s*system\b|skip-tags`)
	var checked int
	for _, dir := range []string{".", "../packer"} {
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
