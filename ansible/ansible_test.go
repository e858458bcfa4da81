package ansible_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/internal/testtool"
)

// images lists the playbooks, and for the images that configure a secret-using agent, the
// config file that must never hold the secret and the line that would hold it.
var images = []struct {
	name       string
	secretFile string
	secretLine *regexp.Regexp
}{
	{name: "base", secretFile: "etc/datadog-agent/datadog.yaml", secretLine: regexp.MustCompile(`(?m)^\s*api_key\s*:`)},
	{name: "web"},
	{name: "worker"},
	{name: "build-agent", secretFile: "etc/buildkite-agent/buildkite-agent.cfg", secretLine: regexp.MustCompile(`(?m)^\s*token\s*=`)},
	{name: "deploy-agent", secretFile: "etc/buildkite-agent/buildkite-agent.cfg", secretLine: regexp.MustCompile(`(?m)^\s*token\s*=`)},
}

func TestSyntax(t *testing.T) {
	bin := testtool.Find(t, "ansible-playbook")
	for _, img := range images {
		t.Run(img.name, func(t *testing.T) {
			t.Parallel()
			out, err := run(t.Context(), t, bin, "-i", "localhost,", "--syntax-check", img.name+".yml")
			assert.NilError(t, err, out)
		})
	}
}

// TestIdempotent provisions each image in test mode twice: the first run must write the image's
// files, the second must find nothing to change.
func TestIdempotent(t *testing.T) {
	bin := testtool.Find(t, "ansible-playbook")
	for _, img := range images {
		t.Run(img.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			args := testModeArgs(img.name, root)

			out, err := run(t.Context(), t, bin, args...)
			assert.NilError(t, err, out)
			first := parseRecap(t, out)
			assert.Check(t, first.changed > 0, "first run changed nothing:\n%s", out)

			out, err = run(t.Context(), t, bin, args...)
			assert.NilError(t, err, out)
			second := parseRecap(t, out)
			assert.Check(t, is.Equal(second.changed, 0), "second run changed something:\n%s", out)

			if img.secretFile != "" {
				data, err := os.ReadFile(filepath.Join(root, img.secretFile))
				assert.NilError(t, err)
				assert.Check(t, !img.secretLine.Match(data), "%s sets a secret:\n%s", img.secretFile, data)
			}
		})
	}
}

// TestRefusesBuildTimeSecret passes a secret the way a careless build would and checks that the
// playbook fails, says which variable to remove, and that the value lands in no file and no output.
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
			root := t.TempDir()
			// Starting at the check saves provisioning what comes before it.
			args := append(testModeArgs(tc.image, root), "-e", tc.variable+"="+secret, "--start-at-task", tc.task)

			out, err := run(t.Context(), t, bin, args...)
			assert.Assert(t, !strings.Contains(out, secret), "the output shows the secret")
			assert.Assert(t, err != nil, "the playbook accepted %s:\n%s", tc.variable, out)
			assert.Check(t, is.Contains(out, tc.variable+" is set, but an image must never contain"))

			err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				assert.Check(t, !bytes.Contains(data, []byte(secret)), "%s holds the secret", path)
				return nil
			})
			assert.NilError(t, err)
		})
	}
}

// TestSystemChangesAreTagged checks the test-mode contract on every task file: a task not tagged
// "system" may only write files under  (and never change ownership), and
// every handler is tagged and guarded, since Ansible 2.14 runs notified handlers under
// --skip-tags.
func TestSystemChangesAreTagged(t *testing.T) {
	files, err := filepath.Glob("roles/*/*/*.yml")
	assert.NilError(t, err)
	assert.Assert(t, len(files) > 0)
	for _, file := range files {
		kind := filepath.Base(filepath.Dir(file))
		if kind != "tasks" && kind != "handlers" {
			continue
		}
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			assert.NilError(t, err)
			var tasks []map[string]any
			assert.NilError(t, yaml.Unmarshal(data, &tasks), file)
			checkTasks(t, file, tasks, nil, kind == "handlers")
		})
	}
	for _, img := range images {
		file := img.name + ".yml"
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			assert.NilError(t, err)
			var plays []map[string]any
			assert.NilError(t, yaml.Unmarshal(data, &plays), file)
			for _, play := range plays {
				tags := stringList(play["tags"])
				for _, section := range []string{"pre_tasks", "tasks", "post_tasks", "handlers"} {
					checkTasks(t, file, taskList(t, file, play[section]), tags, section == "handlers")
				}
			}
		})
	}
}

// Modules that change nothing on the host, and modules that write files.
var (
	pureModules = []string{"assert", "fail", "debug", "set_fact", "include_role", "import_role", "include_tasks", "import_tasks", "meta"}
	fileModules = []string{"template", "copy", "file", "lineinfile", "blockinfile"}
	keywords    = []string{"name", "tags", "when", "loop", "loop_control", "vars", "notify", "listen", "register", "changed_when", "failed_when", "become", "no_log", "ignore_errors", "environment", "block", "rescue", "always"}
)

func checkTasks(t *testing.T, file string, tasks []map[string]any, inherited []string, handlers bool) {
	t.Helper()
	for i, task := range tasks {
		where := file + ": task " + strconv.Itoa(i+1)
		if name, ok := task["name"].(string); ok {
			where = file + ": " + strconv.Quote(name)
		}
		tags := append(slices.Clone(inherited), stringList(task["tags"])...)
		system := slices.Contains(tags, "system")
		if _, ok := task["block"]; ok {
			for _, part := range []string{"block", "rescue", "always"} {
				checkTasks(t, file, taskList(t, where, task[part]), tags, handlers)
			}
			continue
		}
		module, args := moduleOf(task)
		if handlers {
			when, _ := task["when"].(string)
			assert.Check(t, system && strings.Contains(when, "ansible_skip_tags"),
				"%s: handlers must be tagged system and guarded with when: \"'system' not in ansible_skip_tags\"", where)
		}
		if system {
			continue
		}
		if slices.Contains(pureModules, module) {
			continue
		}
		if !slices.Contains(fileModules, module) {
			t.Errorf("%s: module %q changes the system: tag the task system", where, module)
			continue
		}
		params, ok := args.(map[string]any)
		if !ok {
			t.Errorf("%s: write the %s arguments as a mapping", where, module)
			continue
		}
		target, _ := params["dest"].(string)
		if target == "" {
			target, _ = params["path"].(string)
		}
		assert.Check(t, strings.HasPrefix(target, ""),
			"%s: writes %q outside : prefix the path or tag the task system", where, target)
		for _, key := range []string{"owner", "group"} {
			_, set := params[key]
			assert.Check(t, !set, "%s: sets %s: ownership changes belong in system-tagged tasks", where, key)
		}
	}
}

func moduleOf(task map[string]any) (string, any) {
	for key, args := range task {
		if !slices.Contains(keywords, key) {
			return strings.TrimPrefix(key, "ansible.builtin."), args
		}
	}
	return "", nil
}

func taskList(t *testing.T, where string, v any) []map[string]any {
	t.Helper()
	if v == nil {
		return nil
	}
	items, ok := v.([]any)
	assert.Assert(t, ok, "%s: not a list of tasks", where)
	var tasks []map[string]any
	for _, item := range items {
		task, ok := item.(map[string]any)
		assert.Assert(t, ok, "%s: a task is not a mapping", where)
		tasks = append(tasks, task)
	}
	return tasks
}

func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var s []string
		for _, item := range v {
			if str, ok := item.(string); ok {
				s = append(s, str)
			}
		}
		return s
	}
	return nil
}

type recap struct{ ok, changed, unreachable, failed int }

var recapLine = regexp.MustCompile(`(?m)^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

func parseRecap(t *testing.T, out string) recap {
	t.Helper()
	m := recapLine.FindAllStringSubmatch(out, -1)
	assert.Assert(t, is.Len(m, 1), "want one PLAY RECAP line for localhost:\n%s", out)
	n := func(i int) int {
		v, err := strconv.Atoi(m[0][i])
		assert.NilError(t, err)
		return v
	}
	r := recap{ok: n(1), changed: n(2), unreachable: n(3), failed: n(4)}
	assert.Assert(t, r.unreachable == 0 && r.failed == 0, "run failed:\n%s", out)
	return r
}

// testModeArgs provisions this machine in the contract's test mode: files under root, nothing
// tagged system.
func testModeArgs(image, root string) []string {
	return []string{
		"-i", "localhost,", "-c", "local",
		"--skip-tags", "system",
		"-e", "amichain_root=" + root,
		"-e", "image_name=" + image,
		image + ".yml",
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
