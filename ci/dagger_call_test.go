// Package ci tests ci/dagger-call.sh, the one `dagger call` both CI pipelines run, against a
// stand-in dagger CLI that replays what the real engine printed (testdata).
package ci

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// fakeDagger puts a dagger on PATH that records its arguments, prints stdout and stderr files
// and exits with code.
func fakeDagger(t *testing.T, stdout, stderr string, code int) (path, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\n"
	if stdout != "" {
		script += "cat " + stdout + "\n"
	}
	if stderr != "" {
		script += "cat " + stderr + " >&2\n"
	}
	script += "exit " + string(rune('0'+code)) + "\n"
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "dagger"), []byte(script), 0o755))
	return dir + string(os.PathListSeparator) + os.Getenv("PATH"), argsFile
}

func run(t *testing.T, path string, fn string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command("bash", "dagger-call.sh", fn)
	cmd.Env = []string{"PATH=" + path, "AMICHAIN_BUCKET=records", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY=ci-dummy-secret", "_EXPERIMENTAL_DAGGER_RUNNER_HOST=unix:///nowhere"}
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func TestFailedBuildPrintsTheTableOnStdout(t *testing.T) {
	path, _ := fakeDagger(t, "", filepath.Join("testdata", "build-all-failed.stderr"), 1)
	stdout, stderr, err := run(t, path, "build-all")
	exit, ok := err.(*exec.ExitError)
	assert.Assert(t, ok, "want a non-zero exit, got %v", err)
	assert.Equal(t, exit.ExitCode(), 1)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	assert.Equal(t, lines[0], "some images failed")
	assert.Check(t, strings.HasPrefix(lines[1], "IMAGE "))
	assert.Equal(t, lines[len(lines)-1], "0 built, 0 reuse, 0 up to date, 1 failed, 4 skipped")
	assert.Equal(t, strings.Count(stdout, " failed, "), 1, "the summary line appears once")
	assert.Check(t, !strings.Contains(stdout, "traceparent"))
	assert.Check(t, is.Contains(stderr, "Amichain"), "dagger's progress still goes to stderr")
}

func TestCalls(t *testing.T) {
	for _, tc := range []struct {
		fn   string
		want string
	}{
		{"plan", "plan\ntable"},
		{"build-all", "build-all\ntable"},
		{"ids", "ids"},
		{"sweep", "sweep"},
		{"web", "image\n--name\nweb\nbuild\nami"},
	} {
		t.Run(tc.fn, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			// A field selected last (an AMI id) comes without a newline; the script adds one.
			assert.NilError(t, os.WriteFile(out, []byte("result"), 0o644))
			path, argsFile := fakeDagger(t, out, "", 0)
			stdout, _, err := run(t, path, tc.fn)
			assert.NilError(t, err)
			assert.Equal(t, stdout, "result\n")
			args, err := os.ReadFile(argsFile)
			assert.NilError(t, err)
			assert.Check(t, is.Contains(string(args), "--bucket\nrecords\n"))
			// Credentials go by name, never by value.
			assert.Check(t, is.Contains(string(args), "--aws-secret-access-key\nenv://AWS_SECRET_ACCESS_KEY\n"))
			assert.Check(t, !strings.Contains(string(args), "ci-dummy-secret"))
			assert.Check(t, strings.HasSuffix(string(args), "\n"+tc.want+"\n"), "args: %s", args)
		})
	}
}
