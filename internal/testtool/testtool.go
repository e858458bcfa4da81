// Package testtool finds the external programs tests run for real (packer, versitygw,
// ansible-playbook, sshd, git). A missing tool skips the test with what to do, except in CI
// (AMICHAIN_REQUIRE_TOOLS=1), where skipping would hide that nothing was tested.
package testtool

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Root returns the repository root: the nearest directory above the working directory that
// holds amichain.yaml.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "amichain.yaml")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no repository root (amichain.yaml) above the working directory")
		}
		dir = parent
	}
}

// Find returns the absolute path of name: from the repository's .tools/bin (where
// .ci/install-tools puts what it builds), else from PATH (and /usr/sbin, for sshd).
func Find(t testing.TB, name string) string {
	t.Helper()
	local := filepath.Join(Root(t), ".tools", "bin", name)
	if _, err := os.Stat(local); err == nil {
		return local
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", name); fileExists(p) {
		return p
	}
	Missing(t, name+" not found in .tools/bin, PATH or /usr/sbin: run .ci/install-tools")
	return ""
}

// Dagger returns the dagger CLI when an engine is set up for it
// (_EXPERIMENTAL_DAGGER_RUNNER_HOST); without one it skips the test, or fails it when CI said
// there is one (AMICHAIN_REQUIRE_DAGGER=1, set by .ci/run when it starts the engine kit).
func Dagger(t testing.TB) string {
	t.Helper()
	dagger, err := exec.LookPath("dagger")
	if err == nil && os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST") != "" {
		return dagger
	}
	msg := "no Dagger engine: eval \"$(../shared/dagger-engine/setup.sh)\" first (see README.md)"
	if os.Getenv("AMICHAIN_REQUIRE_DAGGER") == "1" {
		t.Fatal(msg + " (AMICHAIN_REQUIRE_DAGGER=1 makes this a failure)")
	}
	t.Skip(msg)
	return ""
}

// PluginDir returns the project-local Packer plugin directory install-tools fills.
func PluginDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(Root(t), ".tools", "packer-plugins")
	if !fileExists(dir) {
		Missing(t, dir+" does not exist: run .ci/install-tools")
	}
	return dir
}

// Missing skips the test with msg, or fails it when AMICHAIN_REQUIRE_TOOLS=1.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("AMICHAIN_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg + " (AMICHAIN_REQUIRE_TOOLS=1 makes this a failure)")
	}
	t.Skip(msg)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Output collects what a tool running in the background writes, for a test to read while the
// tool still writes (os/exec copies its output from another goroutine).
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
