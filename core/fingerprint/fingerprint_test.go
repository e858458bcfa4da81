package fingerprint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	tfs "gotest.tools/v3/fs"
	"gotest.tools/v3/golden"

	"github.com/amichain/amichain/core/toolchain"
	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/internal/testtool"
)

const fixture = "testdata/repo"

// computeAll fingerprints every image of the repository at dir, concurrently (as the planner
// may), each with the same parent AMI so that only the image's own inputs matter.
func computeAll(t *testing.T, dir string) map[string]Set {
	t.Helper()
	fsys := os.DirFS(dir)
	tr, err := tree.Load(fsys, tree.DefaultPath)
	assert.NilError(t, err)
	tools, err := toolchain.Load(fsys, toolchain.DefaultPath)
	assert.NilError(t, err)
	h := NewHasher(fsys)
	out := map[string]Set{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, img := range tr.Images {
		wg.Go(func() {
			set, err := h.Compute(img, tools, "ami-0parent")
			assert.Check(t, err)
			mu.Lock()
			out[img.Name] = set
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func sums(sets map[string]Set) map[string]string {
	out := map[string]string{}
	for name, s := range sets {
		out[name] = s.Sum
	}
	return out
}

func copyFixture(t *testing.T) string {
	t.Helper()
	return tfs.NewDir(t, "repo", tfs.FromDir(fixture)).Path()
}

func setMtimes(t *testing.T, dir string, when time.Time) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	assert.NilError(t, err)
}

// The web image's fingerprint, pinned: a change here rebuilds every image in production, so it
// must only happen together with a new Scheme.
func TestComputeGolden(t *testing.T) {
	sets := computeAll(t, fixture)
	data, err := json.MarshalIndent(sets["web"], "", "  ")
	assert.NilError(t, err)
	golden.Assert(t, string(data)+"\n", "web.fingerprint.golden")
	assert.Equal(t, len(sets), 5)
}

func TestSumIgnoresMtimesAndLocation(t *testing.T) {
	a, b := copyFixture(t), copyFixture(t)
	setMtimes(t, a, time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC))
	setMtimes(t, b, time.Date(2024, 6, 7, 8, 9, 10, 0, time.UTC))
	want := sums(computeAll(t, fixture))
	assert.DeepEqual(t, sums(computeAll(t, a)), want)
	assert.DeepEqual(t, sums(computeAll(t, b)), want)
}

func TestSumSameInAGitClone(t *testing.T) {
	gitBin := testtool.Find(t, "git")
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(gitBin, append([]string{"-C", dir, "-c", "user.name=amichain", "-c", "user.email=ci@amichain.invalid", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		assert.NilError(t, err, "git %s: %s", strings.Join(args, " "), out)
	}
	src := copyFixture(t)
	git(src, "init", "-q")
	git(src, "add", ".")
	git(src, "commit", "-q", "-m", "fixture")
	clone := filepath.Join(t.TempDir(), "clone")
	git(t.TempDir(), "clone", "-q", "--no-local", src, clone)

	assert.DeepEqual(t, sums(computeAll(t, clone)), sums(computeAll(t, fixture)))
}

func TestOnlyImagesUsingAChangedFileChange(t *testing.T) {
	all := []string{"base", "build-agent", "deploy-agent", "web", "worker"}
	tests := []struct {
		name    string
		file    string // written (created if missing)
		changed []string
	}{
		{"role used only by web", "ansible/roles/nginx/templates/site.conf.j2", []string{"web"}},
		{"role used only by base", "ansible/roles/ssh-hardening/files/sshd_config", []string{"base"}},
		{"role every image uses", "ansible/roles/common/templates/motd.j2", all},
		{"role reached through meta dependencies", "ansible/roles/docker/files/daemon.json", []string{"build-agent", "deploy-agent"}},
		{"new file in a used role", "ansible/roles/nginx/files/extra.html", []string{"web"}},
		{"playbook task file", "ansible/tasks/worker-queue.yml", []string{"worker"}},
		{"file input", "ci/runner.conf", []string{"build-agent"}},
		{"new file in a directory input", "ci/hooks/new-hook.sh", []string{"build-agent"}},
		{"the shared template", "packer/image.pkr.hcl", all},
		{"role no image uses", "ansible/roles/unused/tasks/main.yml", nil},
		{"file outside every image", "README.md", nil},
	}
	before := sums(computeAll(t, fixture))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFixture(t)
			assert.NilError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, tc.file)), 0o755))
			f, err := os.OpenFile(filepath.Join(dir, tc.file), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			assert.NilError(t, err)
			_, err = f.WriteString("# edited\n")
			assert.NilError(t, err)
			assert.NilError(t, f.Close())

			var changed []string
			for name, sum := range sums(computeAll(t, dir)) {
				if sum != before[name] {
					changed = append(changed, name)
				}
			}
			sort.Strings(changed)
			assert.DeepEqual(t, changed, tc.changed)
		})
	}
}

// countingFS counts the opens of each regular file: only hashing opens files, the playbook
// walker reads through ReadFile.
type countingFS struct {
	fsys  fs.FS
	mu    sync.Mutex
	opens map[string]int
}

func (c *countingFS) Open(name string) (fs.File, error) {
	c.mu.Lock()
	c.opens[name]++
	c.mu.Unlock()
	return c.fsys.Open(name)
}
func (c *countingFS) ReadFile(name string) ([]byte, error)       { return fs.ReadFile(c.fsys, name) }
func (c *countingFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(c.fsys, name) }
func (c *countingFS) Stat(name string) (fs.FileInfo, error)      { return fs.Stat(c.fsys, name) }

func TestHasherHashesEachFileOnce(t *testing.T) {
	cfs := &countingFS{fsys: os.DirFS(fixture), opens: map[string]int{}}
	tr, err := tree.Load(cfs, tree.DefaultPath)
	assert.NilError(t, err)
	h := NewHasher(cfs)
	var wg sync.WaitGroup
	for range 3 { // the same images again and again, concurrently
		for _, img := range tr.Images {
			wg.Go(func() {
				_, err := h.Compute(img, toolchain.Versions{"PACKER_VERSION": "1.12.0"}, "ami-1")
				assert.Check(t, err)
			})
		}
	}
	wg.Wait()
	assert.Equal(t, cfs.opens["ansible/roles/common/templates/motd.j2"], 1)
	for name, n := range cfs.opens {
		assert.Check(t, n == 1, "%s opened %d times", name, n)
	}
}

func TestComputeInputs(t *testing.T) {
	img := tree.Image{Name: "web", Parent: "base", Template: "packer/image.pkr.hcl", Playbook: "ansible/web.yml"}
	tools := toolchain.Versions{"PACKER_VERSION": "1.12.0", "PACKER_SUM": "h1:abc=", "X": "y"}
	set, err := NewHasher(os.DirFS(fixture)).Compute(img, tools, "ami-0123")
	assert.NilError(t, err)
	got := map[string]string{}
	for _, in := range set.Inputs {
		got[in.Name] = in.Digest
	}
	assert.Equal(t, got["tool:packer"], "1.12.0")
	assert.Equal(t, got["tool:packer:sum"], "h1:abc=")
	assert.Equal(t, got["tool:x:"], "y")
	assert.Equal(t, got["parent-ami"], "ami-0123")
	assert.Equal(t, got["scheme"], Scheme)
	data, err := os.ReadFile(filepath.Join(fixture, "ansible/roles/nginx/templates/site.conf.j2"))
	assert.NilError(t, err)
	want := sha256.Sum256(data)
	assert.Equal(t, got["file:ansible/roles/nginx/templates/site.conf.j2"], hex.EncodeToString(want[:]))
	_, unused := got["file:ansible/roles/unused/tasks/main.yml"]
	assert.Assert(t, !unused)
	assert.Assert(t, sort.SliceIsSorted(set.Inputs, func(i, j int) bool { return set.Inputs[i].Name < set.Inputs[j].Name }))
}

// The verify playbook and the files it uses are inputs: it decides whether an AMI is made.
func TestComputeIncludesVerifyPlaybook(t *testing.T) {
	img := tree.Image{Name: "web", Parent: "base", Template: "packer/image.pkr.hcl", Playbook: "ansible/web.yml"}
	h := NewHasher(os.DirFS(fixture))
	without, err := h.Compute(img, nil, "ami-0123")
	assert.NilError(t, err)
	img.Verify = "ansible/worker.yml" // any playbook: this one includes ansible/tasks/worker-queue.yml
	with, err := h.Compute(img, nil, "ami-0123")
	assert.NilError(t, err)
	names := map[string]bool{}
	for _, in := range with.Inputs {
		names[in.Name] = true
	}
	assert.Check(t, names["file:ansible/worker.yml"])
	assert.Check(t, names["file:ansible/tasks/worker-queue.yml"])
	assert.Check(t, with.Sum != without.Sum)

	img.Verify = "ansible/missing.yml"
	_, err = h.Compute(img, nil, "ami-0123")
	assert.ErrorContains(t, err, "verify playbook")
}

func TestImageEntry(t *testing.T) {
	base := tree.Image{Name: "build-agent", Parent: "base", Template: "packer/image.pkr.hcl", Playbook: "ansible/build-agent.yml",
		Inputs: []string{"ci/runner.conf", "ci/hooks"}, Vars: map[string]string{"volume_size": "50", "a": "b"}}
	tests := []struct {
		name   string
		edit   func(*tree.Image)
		change bool
	}{
		{"nothing", func(*tree.Image) {}, false},
		{"inputs reordered", func(i *tree.Image) { i.Inputs = []string{"ci/hooks", "ci/runner.conf"} }, false},
		{"vars rebuilt in another order", func(i *tree.Image) { i.Vars = map[string]string{"a": "b", "volume_size": "50"} }, false},
		{"var changed", func(i *tree.Image) { i.Vars = map[string]string{"volume_size": "60", "a": "b"} }, true},
		{"parent changed", func(i *tree.Image) { i.Parent = "web" }, true},
		{"renamed", func(i *tree.Image) { i.Name = "builder" }, true},
	}
	want, err := imageDigest(base)
	assert.NilError(t, err)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := base
			img.Inputs = append([]string(nil), base.Inputs...)
			tc.edit(&img)
			got, err := imageDigest(img)
			assert.NilError(t, err)
			assert.Equal(t, got != want, tc.change)
		})
	}
	assert.DeepEqual(t, base.Inputs, []string{"ci/runner.conf", "ci/hooks"}) // caller's entry untouched
}

func TestComputeErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		img     tree.Image
		wantErr []string
	}{
		{
			name: "symlinked file in a role",
			setup: func(t *testing.T, dir string) {
				files := filepath.Join(dir, "ansible/roles/nginx/files")
				assert.NilError(t, os.Mkdir(files, 0o755))
				assert.NilError(t, os.Symlink("../templates/site.conf.j2", filepath.Join(files, "site.conf")))
			},
			img:     tree.Image{Name: "web", Template: "packer/image.pkr.hcl", Playbook: "ansible/web.yml"},
			wantErr: []string{`image "web"`, "ansible/roles/nginx/files/site.conf is a symbolic link", "replace it with the file"},
		},
		{
			name: "symlinked directory in a role",
			setup: func(t *testing.T, dir string) {
				assert.NilError(t, os.Symlink("templates", filepath.Join(dir, "ansible/roles/nginx/files")))
			},
			img:     tree.Image{Name: "web", Template: "packer/image.pkr.hcl", Playbook: "ansible/web.yml"},
			wantErr: []string{"ansible/roles/nginx/files is a symbolic link"},
		},
		{
			name: "symlinked role directory",
			setup: func(t *testing.T, dir string) {
				roles := filepath.Join(dir, "ansible/roles")
				assert.NilError(t, os.Rename(filepath.Join(roles, "nginx"), filepath.Join(dir, "nginx-real")))
				assert.NilError(t, os.Symlink("../../nginx-real", filepath.Join(roles, "nginx")))
			},
			img:     tree.Image{Name: "web", Template: "packer/image.pkr.hcl", Playbook: "ansible/web.yml"},
			wantErr: []string{"ansible/roles/nginx is a symbolic link"},
		},
		{
			name: "symlink in a directory input",
			setup: func(t *testing.T, dir string) {
				assert.NilError(t, os.Symlink("/etc/hostname", filepath.Join(dir, "ci/hooks/outside")))
			},
			img:     tree.Image{Name: "b", Template: "packer/image.pkr.hcl", Playbook: "ansible/base.yml", Inputs: []string{"ci/hooks"}},
			wantErr: []string{"ci/hooks/outside is a symbolic link"},
		},
		{
			name:    "missing input",
			img:     tree.Image{Name: "b", Template: "packer/image.pkr.hcl", Playbook: "ansible/base.yml", Inputs: []string{"ci/nope"}},
			wantErr: []string{`image "b"`, "input ci/nope", "fix the path in amichain.yaml"},
		},
		{
			name:    "missing template",
			img:     tree.Image{Name: "b", Template: "packer/nope.pkr.hcl", Playbook: "ansible/base.yml"},
			wantErr: []string{"hash packer/nope.pkr.hcl"},
		},
		{
			name: "templated role without inputs",
			setup: func(t *testing.T, dir string) {
				writeFile(t, dir, "ansible/dyn.yml", "- hosts: all\n  roles: [\"{{ r }}\"]\n")
			},
			img:     tree.Image{Name: "dyn", Template: "packer/image.pkr.hcl", Playbook: "ansible/dyn.yml"},
			wantErr: []string{"ansible/dyn.yml:2", "templated", "list the files it can use in the image's inputs"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFixture(t)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			set, err := NewHasher(os.DirFS(dir)).Compute(tc.img, nil, "ami-1")
			assert.Assert(t, err != nil, "want an error, got %v", set)
			for _, frag := range tc.wantErr {
				assert.ErrorContains(t, err, frag)
			}
		})
	}
}

// Templated references are what the error tells the user to cover with inputs: once the image
// declares inputs they are accepted, and the inputs are hashed.
func TestTemplatedCoveredByInputs(t *testing.T) {
	dir := copyFixture(t)
	writeFile(t, dir, "ansible/dyn.yml", "- hosts: all\n  roles: [common, \"{{ r }}\"]\n")
	img := tree.Image{Name: "dyn", Template: "packer/image.pkr.hcl", Playbook: "ansible/dyn.yml", Inputs: []string{"ansible/roles/nginx"}}
	set, err := NewHasher(os.DirFS(dir)).Compute(img, nil, "ami-1")
	assert.NilError(t, err)
	var names []string
	for _, in := range set.Inputs {
		names = append(names, in.Name)
	}
	assert.DeepEqual(t, names, []string{
		"file:ansible/dyn.yml",
		"file:ansible/roles/common/tasks/main.yml",
		"file:ansible/roles/common/templates/motd.j2",
		"file:ansible/roles/nginx/tasks/main.yml",
		"file:ansible/roles/nginx/templates/site.conf.j2",
		"file:packer/image.pkr.hcl",
		"image", "parent-ami", "scheme",
	})
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
}
