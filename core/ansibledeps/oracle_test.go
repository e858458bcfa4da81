package ansibledeps_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/ansibledeps"
	"github.com/amichain/amichain/core/ansibletrace"
	"github.com/amichain/amichain/internal/testtool"
)

// OracleCases are layouts modelled on public repositories (kubespray, kubernetes-sigs
// image-builder, geerlingguy roles, debops), one per construct, under testdata/oracle/NAME.
// Each is a repository root, the working directory of ansible-playbook as under Packer.
var OracleCases = []struct {
	Name, Playbook string
}{
	{"playbook-folders", "ansible/site.yml"},
	{"loops", "ansible/site.yml"},
	{"role-fallback", "ansible/site.yml"},
	{"lookups", "ansible/site.yml"},
	{"jinja", "ansible/site.yml"},
	{"include-vars", "ansible/site.yml"},
	{"plugins", "ansible/site.yml"},
	{"ansible-cfg", "cluster.yml"},
	{"collections", "ansible/site.yml"},
	{"roles", "ansible/site.yml"},
	{"imported-subfolder", "ansible/node.yml"},
}

// TestOracle runs the real ansible-playbook over each case under strace, with the audit hook
// of core/ansibletrace loaded, and checks that every file of the case Ansible opened and every
// folder it listed is an input of the static analysis, which returns no error. It also checks
// that the hook saw every read strace saw: the hook is the safety net of real builds.
func TestOracle(t *testing.T) {
	bin := testtool.Find(t, "ansible-playbook")
	strace := testtool.Find(t, "strace")
	for _, tc := range OracleCases {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			root := copyCase(t, filepath.Join("testdata", "oracle", tc.Name))
			deps, err := ansibledeps.Analyze(os.DirFS(root), tc.Playbook)
			assert.NilError(t, err)
			assert.NilError(t, deps.Check(nil))

			traced, hooked := runTraced(t, strace, bin, root, tc.Playbook)
			inputs := map[string]bool{}
			for _, f := range deps.Files {
				inputs[f] = true
			}
			for _, r := range traced {
				switch r.Kind {
				case ansibletrace.File:
					assert.Check(t, inputs[r.Path], "ansible read %s, which the static analysis did not find", r.Path)
				case ansibletrace.Dir:
					assert.Check(t, dirCovered(deps, r.Path), "ansible listed %s, which the static analysis does not hash whole or list", r.Path)
				}
				assert.Check(t, slices.Contains(hooked, r), "strace saw %s %s, the audit hook did not", r.Kind, r.Path)
			}
			read := map[string]bool{}
			for _, r := range traced {
				if r.Kind == ansibletrace.File {
					read[r.Path] = true
				}
			}
			var over []string
			for _, f := range deps.Files {
				if !read[f] {
					over = append(over, f)
				}
			}
			t.Logf("%d files read, %d inputs, %d hashed but not read: %s", len(read), len(deps.Files), len(over), strings.Join(over, " "))
		})
	}
}

func dirCovered(d *ansibledeps.Deps, dir string) bool {
	if slices.Contains(d.Listed, dir) {
		return true
	}
	for _, h := range d.Dirs {
		if dir == h || strings.HasPrefix(dir, h+"/") {
			return true
		}
	}
	return false
}

// copyCase copies a case to a fresh folder, so that what Ansible leaves behind stays out of
// testdata and the folder is not world-writable (Ansible then ignores its ansible.cfg).
func copyCase(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	assert.NilError(t, os.CopyFS(dst, os.DirFS(src)))
	return dst
}

var (
	straceOpen  = regexp.MustCompile(`^\d+\s+openat\([^,]+, "(?:[^"\\]|\\.)*", ([A-Z_|]+)(?:, 0\d*)?\) = \d+<(.*)>$`)
	straceDents = regexp.MustCompile(`^\d+\s+getdents64\(\d+<(.*?)>, `)
)

// runTraced runs the playbook as Packer would (working directory: the repository root) and
// returns what strace saw it read under root, and what the audit hook reported.
func runTraced(t *testing.T, strace, bin, root, playbook string) (traced, hooked []ansibletrace.Read) {
	t.Helper()
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	assert.NilError(t, os.Mkdir(out, 0o755))
	hookDir := filepath.Join(tmp, "hook")
	env, err := ansibletrace.Install(hookDir, os.Environ())
	assert.NilError(t, err)
	traceFile := filepath.Join(tmp, "strace.txt")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, strace, "-f", "-y", "-qq", "-e", "trace=openat,getdents64", "-e", "signal=none", "-o", traceFile,
		bin, "-c", "local", "-i", "localhost,", "-e", "out="+out, playbook)
	cmd.Dir = root
	cmd.Env = slices.Concat(os.Environ(), env, []string{
		"HOME=" + tmp, "ANSIBLE_LOCAL_TEMP=" + filepath.Join(tmp, "ansible-tmp"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0", "ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3",
	})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	assert.NilError(t, err, "ansible-playbook failed:\n%s\n%s", stdout.String(), stderr.String())

	var rs ansibletrace.Reads
	for _, l := range strings.Split(stderr.String(), "\n") {
		rs.Line(l)
	}
	hooked = rs.List()

	data, err := os.ReadFile(traceFile)
	assert.NilError(t, err)
	seen := map[ansibletrace.Read]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	prefix := root + "/"
	for sc.Scan() {
		line := sc.Text()
		var r ansibletrace.Read
		if m := straceOpen.FindStringSubmatch(line); m != nil {
			flags := m[1]
			if strings.Contains(flags, "O_DIRECTORY") || strings.Contains(flags, "O_WRONLY") || strings.Contains(flags, "O_RDWR") {
				continue
			}
			r = ansibletrace.Read{Path: m[2], Kind: ansibletrace.File}
		} else if m := straceDents.FindStringSubmatch(line); m != nil {
			r = ansibletrace.Read{Path: m[1], Kind: ansibletrace.Dir}
		} else {
			continue
		}
		rel, ok := strings.CutPrefix(r.Path, prefix)
		if !ok || strings.Contains(rel, "__pycache__") {
			continue
		}
		if fi, err := os.Stat(r.Path); err != nil || (r.Kind == ansibletrace.File && !fi.Mode().IsRegular()) {
			continue
		}
		r.Path = rel
		if !seen[r] {
			seen[r] = true
			traced = append(traced, r)
		}
	}
	assert.NilError(t, sc.Err())
	assert.Assert(t, len(traced) > 0, "strace saw no reads under %s: is the trace working?", root)
	return traced, hooked
}
