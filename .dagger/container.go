package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"dagger/amichain/internal/dagger"

	"github.com/amichain/amichain/core/fingerprint"
	"github.com/amichain/amichain/core/tree"
)

// The tree as containers: each image FROM its parent's container, the root FROM the upstream
// container image, each image's playbook applied for real (as root, -c local) by the
// toolchain's Ansible, which is mounted for the run only: the images never contain Ansible.

const (
	ctrSrc     = "/run/amichain/src"     // the image's files (what its fingerprint names)
	ctrAnsible = "/run/amichain/ansible" // the toolchain's Ansible: lib/ (Python packages), bin/
	ctrHome    = "/run/amichain/home"    // Ansible's state for the run (temp files, facts cache)
	ctrFiles   = "/run/amichain/files"   // ansible-files, if given
)

// upstreamPrerequisites is what the Debian cloud AMI has and the Debian container image lacks,
// and the playbooks rely on: python3 (Ansible's modules, python3-apt for the apt module),
// sudo (become) and systemd (systemctl, which enables units at boot; it does not run).
var upstreamPrerequisites = []string{"python3", "python3-apt", "sudo", "systemd"}

type containerOpts struct {
	vars  []string          // NAME=VALUE extra vars for every playbook run
	files *dagger.Directory // mounted at ctrFiles for every playbook run
}

// containerTree builds the images of one source's tree as containers, each once.
type containerTree struct {
	tree    *tree.Tree
	files   map[string]*dagger.Directory // per image: the files its playbooks use
	ansible *dagger.Directory
	opts    containerOpts

	mu        sync.Mutex
	converged map[string]*dagger.Container
}

// container returns the named image as a container, converged, checked for idempotence and
// verified.
func (m *Amichain) container(ctx context.Context, name string) (*dagger.Container, error) {
	t, err := m.containerTree(ctx, containerOpts{})
	if err != nil {
		return nil, err
	}
	ctr, _, err := t.test(ctx, name)
	return ctr, err
}

// TestContainers builds every image of amichain.yaml as a container and checks it, without AWS.
//
// Each image is built FROM its parent's container (the root FROM upstream.container), its
// playbook applied for real by the toolchain's Ansible with the vars the AMI gets. Then, as
// Molecule does: a second run that must change nothing (idempotence), and the image's verify
// playbook. Prints one line per image; fails naming the image, the step and the task.
func (m *Amichain) TestContainers(
	ctx context.Context,
	// Images to build (their parents are built too). Default: every image.
	// +optional
	images []string,
	// Extra Ansible variables (NAME=VALUE) for every playbook run, e.g. a mirror of a
	// third-party apt repository: datadog_apt_url=file:/run/amichain/files/datadog.
	// +optional
	ansibleVar []string,
	// A directory mounted at /run/amichain/files during every playbook run (not part of the
	// images), e.g. a local apt repository that ansible-var points at.
	// +optional
	ansibleFiles *dagger.Directory,
) (string, error) {
	for _, kv := range ansibleVar {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return "", fmt.Errorf("--ansible-var %q: want NAME=VALUE", kv)
		}
	}
	t, err := m.containerTree(ctx, containerOpts{vars: ansibleVar, files: ansibleFiles})
	if err != nil {
		return "", err
	}
	names := t.tree.Names()
	if len(images) > 0 {
		for _, name := range images {
			if _, ok := t.tree.Get(name); !ok {
				return "", fmt.Errorf("--images: no image %q in %s (images: %s)", name, tree.DefaultPath, strings.Join(names, ", "))
			}
		}
		names = images
	}
	results := make([]containerResult, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			_, results[i], _ = t.test(ctx, name)
		})
	}
	wg.Wait()

	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %-9s %-12s %s\n", "IMAGE", "CONVERGE", "IDEMPOTENCE", "VERIFY")
	var errs []error
	for _, r := range results {
		fmt.Fprintf(&b, "%-14s %-9s %-12s %s\n", r.image, r.converge, r.idempotence, r.verify)
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("%s\n%w", b.String(), errors.Join(errs...))
	}
	return b.String(), nil
}

// containerResult is what happened to one image: ok, failed or skipped, per step.
type containerResult struct {
	image                         string
	converge, idempotence, verify string
	err                           error
}

// containerTree reads the tree from the source and finds the files each image uses, through
// the fingerprint's own list, so that an image's containers are cached by those files only.
func (m *Amichain) containerTree(ctx context.Context, opts containerOpts) (*containerTree, error) {
	dir, err := m.exportSource(ctx)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	fsys := os.DirFS(dir)
	tr, err := tree.Load(fsys, tree.DefaultPath)
	if err != nil {
		return nil, err
	}
	if tr.Upstream.Container == "" {
		return nil, fmt.Errorf("%s: upstream: container: missing: set the container image of the upstream OS (e.g. container: debian:bookworm for Debian 12)", tree.DefaultPath)
	}
	h := fingerprint.NewHasher(fsys)
	files := map[string]*dagger.Directory{}
	for _, img := range tr.Images {
		paths, err := h.Files(img)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		// The Packer template makes the AMI, not the container.
		paths = slices.DeleteFunc(paths, func(p string) bool { return p == img.Template })
		if files[img.Name], err = m.contentDirectory(dir, paths); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
	}
	ansible, err := m.toolchainAnsible(ctx)
	if err != nil {
		return nil, err
	}
	return &containerTree{tree: tr, files: files, ansible: ansible, opts: opts, converged: map[string]*dagger.Container{}}, nil
}

// contentDirectory holds paths (relative to dir, the exported source) with their content and
// modes. The engine keys a derived directory (Source.Filter) by how it was derived, so any
// source edit would miss the cache of every image; a directory made of the files' content is
// keyed by that content only. A file that is not text comes from the source instead.
func (m *Amichain) contentDirectory(dir string, paths []string) (*dagger.Directory, error) {
	d := dag.Directory()
	for _, p := range paths {
		full := filepath.Join(dir, filepath.FromSlash(p))
		data, err := os.ReadFile(full)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(full)
		if err != nil {
			return nil, err
		}
		if !utf8.Valid(data) {
			d = d.WithFile(p, m.Source.File(p))
			continue
		}
		d = d.WithNewFile(p, string(data), dagger.DirectoryWithNewFileOpts{Permissions: int(fi.Mode().Perm())})
	}
	return d, nil
}

// toolchainAnsible copies the toolchain container's ansible-playbook and the Python packages it
// imports into a directory: lib/ and bin/ansible-playbook.
func (m *Amichain) toolchainAnsible(ctx context.Context) (*dagger.Directory, error) {
	tc, err := m.ansible(ctx)
	if err != nil {
		return nil, err
	}
	where, err := tc.WithExec([]string{"sh", "-c",
		`command -v ansible-playbook && python3 -c 'import ansible, os; print(os.path.dirname(os.path.dirname(ansible.__file__)))'`}).
		Stdout(ctx)
	if err != nil {
		return nil, fmt.Errorf("find Ansible in the toolchain container: %w", err)
	}
	lines := strings.Fields(where)
	if len(lines) != 2 {
		return nil, fmt.Errorf("find Ansible in the toolchain container: got %q, want the paths of ansible-playbook and its Python packages", where)
	}
	return dag.Directory().
		WithDirectory("lib", tc.Directory(lines[1])).
		WithFile("bin/ansible-playbook", tc.File(lines[0])), nil
}

// test converges name (and its parents), then runs the idempotence and verify steps. It
// returns the converged container.
func (t *containerTree) test(ctx context.Context, name string) (*dagger.Container, containerResult, error) {
	r := containerResult{image: name, converge: "-", idempotence: "-", verify: "-"}
	fail := func(step *string, err error) (*dagger.Container, containerResult, error) {
		*step = "FAILED"
		if failed := failedImage(err); failed != "" && failed != name {
			*step = "skipped"
			err = fmt.Errorf("image %s: not built: its parent %s failed", name, failed)
		}
		r.err = err
		return nil, r, err
	}
	img, _ := t.tree.Get(name)
	ctr := t.converge(img)
	if _, err := ctr.Sync(ctx); err != nil {
		return fail(&r.converge, playbookError(img, "converge", err))
	}
	r.converge = "ok"

	out, err := t.run(ctr, img, img.Playbook).Stdout(ctx)
	if err != nil {
		return fail(&r.idempotence, playbookError(img, "idempotence", err))
	}
	changed, err := changedTasks(out)
	if err != nil {
		return fail(&r.idempotence, fmt.Errorf("image %s: idempotence: %w", name, err))
	}
	if len(changed) > 0 {
		return fail(&r.idempotence, fmt.Errorf("image %s: idempotence: the second run of %s changed %d task(s), want none: %s",
			name, img.Playbook, len(changed), strings.Join(changed, "; ")))
	}
	r.idempotence = "ok"

	if img.Verify == "" {
		r.verify = "none"
		return ctr, r, nil
	}
	if _, err := t.run(ctr, img, img.Verify).Sync(ctx); err != nil {
		return fail(&r.verify, playbookError(img, "verify", err))
	}
	r.verify = "ok"
	return ctr, r, nil
}

// converge returns img's container: its parent's (or the upstream image plus the
// prerequisites) with img's playbook applied. Lazy: nothing runs until it is synced.
func (t *containerTree) converge(img tree.Image) *dagger.Container {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.convergeLocked(img)
}

func (t *containerTree) convergeLocked(img tree.Image) *dagger.Container {
	if ctr, ok := t.converged[img.Name]; ok {
		return ctr
	}
	var from *dagger.Container
	if img.Parent == "" {
		from = dag.Container().From(t.tree.Upstream.Container).
			WithExec([]string{"sh", "-c", "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends " +
				strings.Join(upstreamPrerequisites, " ")})
	} else {
		parent, _ := t.tree.Get(img.Parent)
		from = t.convergeLocked(parent)
	}
	ctr := t.run(from, img, img.Playbook)
	t.converged[img.Name] = ctr
	return ctr
}

// run applies playbook to ctr as the AMI's builder does (image_name, same roles and vars),
// with the toolchain's Ansible and the image's files mounted for this run only.
func (t *containerTree) run(ctr *dagger.Container, img tree.Image, playbook string) *dagger.Container {
	ro := dagger.ContainerWithMountedDirectoryOpts{ReadOnly: true}
	ctr = ctr.
		WithMountedDirectory(ctrSrc, t.files[img.Name], ro).
		WithMountedDirectory(ctrAnsible, t.ansible, ro).
		WithMountedTemp(ctrHome)
	if t.opts.files != nil {
		ctr = ctr.WithMountedDirectory(ctrFiles, t.opts.files, ro)
	}
	// Set for the command only, so that the image's environment stays the upstream one.
	args := []string{"env",
		"PYTHONPATH=" + ctrAnsible + "/lib", "LANG=C.UTF-8",
		"ANSIBLE_HOME=" + ctrHome, "ANSIBLE_LOCAL_TEMP=" + ctrHome + "/tmp", "ANSIBLE_REMOTE_TEMP=" + ctrHome + "/tmp",
		"ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3", "ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_PIPELINING=1", "ANSIBLE_STDOUT_CALLBACK=default",
	}
	args = append(args, "python3", ctrAnsible+"/bin/ansible-playbook", "-i", "localhost,", "-c", "local",
		"-e", "image_name="+img.Name)
	for _, kv := range t.opts.vars {
		args = append(args, "-e", kv)
	}
	args = append(args, path.Join(ctrSrc, playbook))
	ctr = ctr.WithExec(args).
		WithoutMount(ctrSrc).
		WithoutMount(ctrAnsible).
		WithoutMount(ctrHome)
	if t.opts.files != nil {
		ctr = ctr.WithoutMount(ctrFiles)
	}
	return ctr
}

var (
	imageNameArg = regexp.MustCompile(`^image_name=(.+)$`)
	taskLine     = regexp.MustCompile(`^(?:TASK|RUNNING HANDLER) \[(.+?)\] \*+$`)
	failedLine   = regexp.MustCompile(`^(?:fatal|failed): \[[^\]]+\](?: \(item=.*?\))?(?:: (?:FAILED|UNREACHABLE)!)? => (.*)$`)
)

// failedImage names the image whose playbook run failed, from the failed command.
func failedImage(err error) string {
	var ee *dagger.ExecError
	if !errors.As(err, &ee) {
		return ""
	}
	for _, arg := range ee.Cmd {
		if m := imageNameArg.FindStringSubmatch(arg); m != nil {
			return m[1]
		}
	}
	return ""
}

// playbookError says which image, step and task failed, and why, from a failed run's output.
func playbookError(img tree.Image, step string, err error) error {
	var ee *dagger.ExecError
	if !errors.As(err, &ee) {
		return fmt.Errorf("image %s: %s: %w", img.Name, step, err)
	}
	if failed := failedImage(err); failed != "" && failed != img.Name {
		return err // a parent's failure: reported for that image
	}
	task, msg := "", ""
	for _, line := range strings.Split(ee.Stdout, "\n") {
		if m := taskLine.FindStringSubmatch(line); m != nil {
			task = m[1]
		}
		if m := failedLine.FindStringSubmatch(line); m != nil {
			msg = failureMessage(m[1])
			break
		}
	}
	if task == "" || msg == "" {
		// Not a task failure (a syntax error, a missing file): Ansible says why on stderr.
		why := strings.TrimSpace(ee.Stderr)
		if why == "" {
			why = lastLines(ee.Stdout, 5)
		}
		return fmt.Errorf("image %s: %s: ansible-playbook exited %d: %s", img.Name, step, ee.ExitCode, why)
	}
	return fmt.Errorf("image %s: %s: task %q failed: %s", img.Name, step, task, msg)
}

// failureMessage is the msg of a failed task's result, or the result itself, shortened.
func failureMessage(result string) string {
	var r struct {
		Msg    string `json:"msg"`
		Stderr string `json:"stderr"`
	}
	if json.Unmarshal([]byte(result), &r) == nil && r.Msg != "" {
		if r.Stderr != "" {
			return r.Msg + ": " + lastLines(r.Stderr, 3)
		}
		return r.Msg
	}
	if len(result) > 500 {
		return result[:500] + "..."
	}
	return result
}

var (
	changedLine = regexp.MustCompile(`^changed: \[`)
	recapLine   = regexp.MustCompile(`^\S+\s+: ok=\d+\s+changed=(\d+)`)
)

// changedTasks lists the tasks that reported a change ("role : task"), from the default
// callback's output; an error if the recap counts changes it could not attribute.
func changedTasks(out string) ([]string, error) {
	var changed []string
	task, recap := "", ""
	for _, line := range strings.Split(out, "\n") {
		if m := taskLine.FindStringSubmatch(line); m != nil {
			task = m[1]
		}
		if changedLine.MatchString(line) && !slices.Contains(changed, strconv.Quote(task)) {
			changed = append(changed, strconv.Quote(task))
		}
		if m := recapLine.FindStringSubmatch(line); m != nil {
			recap = m[1]
		}
	}
	switch {
	case recap == "":
		return nil, fmt.Errorf("no PLAY RECAP in ansible-playbook's output: %s", lastLines(out, 5))
	case recap != "0" && len(changed) == 0:
		return nil, fmt.Errorf("the recap says changed=%s, but no task said changed: %s", recap, lastLines(out, 5))
	}
	return changed, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
