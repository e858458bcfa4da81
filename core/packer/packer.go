// Package packer builds one image with Packer: the real build.Builder. Runner decides what to
// run and judges the output; the one part that differs between a host and a container is how
// a packer command is run (Exec): Host runs a local process, the Dagger module a container exec.
package packer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/amichain/amichain/core/ansibletrace"
	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/packerlog"
)

// DefaultGrace is how long Packer gets after an interrupt to clean up (terminate its instance,
// delete its temporary key and security group) before it is killed.
const DefaultGrace = 5 * time.Minute

// outputDrain bounds reading Packer's last output once it has exited.
const outputDrain = 10 * time.Second

// Runner builds images with Packer: init, validate, then build, through Exec.
type Runner struct {
	// Exec runs one packer command.
	Exec Exec
	// Vars are passed as -var to every build, after the image's own (e.g. test endpoints).
	Vars map[string]string
	// Region is the region the images are built in.
	Region string
	// Log receives Packer's human-readable output, each line prefixed with "[image] ".
	Log io.Writer

	mu sync.Mutex // serialises writes to Log from builds running in parallel
}

// Exec runs packer with args in the repository root, hands each line of its output (stdout
// and stderr) to line, and returns its exit code. The error is for a packer that could not run
// or was cancelled; a cancelled packer must have been interrupted (as by Ctrl-C) so that it
// cleaned up what it started, where the Exec can.
type Exec interface {
	Run(ctx context.Context, args []string, line func(string)) (exitCode int, err error)
}

// commands are the packer invocations for one image, in the order they run, as arguments to
// the packer binary, to be run in the repository root.
type commands struct {
	Init, Validate, Build []string
}

// reserved are the variables amichain sets itself for every build.
var reserved = []string{"image_name", "parent_ami", "fingerprint", "git_commit", "playbook", "verify_playbook", "region", "run_id"}

// newCommands returns the packer invocations that build req in region. Variables are the
// ones amichain sets (image_name, parent_ami, fingerprint, git_commit, playbook,
// verify_playbook if the image has one, region, run_id), then
// the image's Vars, then extra; a later one wins, but neither may set a reserved variable.
func newCommands(req build.Request, region string, extra map[string]string) (commands, error) {
	img := req.Image
	switch {
	case img.Name == "":
		return commands{}, errors.New("packer: build request has no image name")
	case img.Template == "":
		return commands{}, fmt.Errorf("packer: image %s has no template", img.Name)
	case region == "":
		return commands{}, fmt.Errorf("packer: image %s: no region set (set the runner's Region)", img.Name)
	}
	vars := map[string]string{
		"image_name":  img.Name,
		"parent_ami":  req.ParentAMI,
		"fingerprint": req.Fingerprint,
		"git_commit":  req.Commit,
		"playbook":    img.Playbook,
		"region":      region,
	}
	if img.Verify != "" {
		vars["verify_playbook"] = img.Verify
	}
	if req.RunID != "" {
		vars["run_id"] = req.RunID // tags the builder's resources for the janitor
	}
	maps.Copy(vars, settingsVars(img.Settings))
	for _, src := range []struct {
		what string
		vars map[string]string
	}{{"image " + img.Name + " vars (amichain.yaml)", img.Vars}, {"runner vars", extra}} {
		for k, v := range src.vars {
			if slices.Contains(reserved, k) {
				return commands{}, fmt.Errorf("packer: %s set %q, which amichain sets itself: remove it", src.what, k)
			}
			if slices.Contains(settingVars, k) {
				return commands{}, fmt.Errorf("packer: %s set %q, which comes from the image's settings: set it there (amichain.yaml, see README.md)", src.what, k)
			}
			vars[k] = v
		}
	}
	var varArgs []string
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		varArgs = append(varArgs, "-var", k+"="+vars[k])
	}
	return commands{
		Init:     []string{"init", img.Template},
		Validate: slices.Concat([]string{"validate"}, varArgs, []string{img.Template}),
		Build:    slices.Concat([]string{"build", "-machine-readable", "-color=false"}, varArgs, []string{img.Template}),
	}, nil
}

func result(image, region string, exitCode int, c *packerlog.Collector) (build.Result, error) {
	if exitCode != 0 {
		return build.Result{}, fmt.Errorf("packer build %s failed (exit %d): %s; full log above", image, exitCode, quote(c.Relevant()))
	}
	byTarget, err := c.AMIs()
	if err != nil {
		return build.Result{}, fmt.Errorf("packer build %s: %w", image, err)
	}
	switch len(byTarget) {
	case 0:
		return build.Result{}, fmt.Errorf("packer build %s exited 0 but reported no AMI id (artifact ids: %v): the template must build with amazon-ebs; full log above", image, c.ArtifactIDs())
	case 1:
	default:
		return build.Result{}, fmt.Errorf("packer build %s reported AMIs from %d builds (%s): the template must have exactly one", image, len(byTarget), strings.Join(slices.Sorted(maps.Keys(byTarget)), ", "))
	}
	for _, amis := range byTarget {
		if amis[region] == "" {
			return build.Result{}, fmt.Errorf("packer build %s reported no AMI in %s (got %v): check the template's region", image, region, amis)
		}
		return build.Result{Region: region, AMIs: amis, Reads: c.Reads()}, nil
	}
	panic("unreachable")
}

func quote(lines []string) string {
	if len(lines) == 0 {
		return "Packer printed no error"
	}
	return strings.Join(lines, " | ")
}

// Build runs packer init, validate and build for req. Validate runs before anything is started
// in AWS. On cancellation Packer is interrupted and given Grace to clean up.
func (r *Runner) Build(ctx context.Context, req build.Request) (build.Result, error) {
	if r.Exec == nil {
		return build.Result{}, errors.New("packer: the runner has no Exec set")
	}
	cmds, err := newCommands(req, r.Region, r.Vars)
	if err != nil {
		return build.Result{}, err
	}
	name := req.Image.Name
	for _, step := range []struct {
		what string
		args []string
	}{{"init", cmds.Init}, {"validate", cmds.Validate}} {
		var out lines
		code, err := r.Exec.Run(ctx, step.args, func(s string) {
			r.log(name, s)
			out.add(s)
		})
		if err != nil {
			return build.Result{}, fmt.Errorf("packer %s %s: %w", step.what, name, err)
		}
		if code != 0 {
			return build.Result{}, fmt.Errorf("packer %s %s failed (exit %d): %s", step.what, name, code, quote(out.errors()))
		}
	}
	var c packerlog.Collector
	code, err := r.Exec.Run(ctx, cmds.Build, func(s string) {
		l, ok := packerlog.ParseLine(s)
		if !ok {
			r.log(name, s)
			c.AddText(s)
			return
		}
		c.Add(l)
		if l.Type == "ui" && len(l.Data) >= 2 {
			for _, m := range strings.Split(l.Data[1], "\n") {
				if _, read := ansibletrace.Parse(m); !read { // kept in the record, not the log
					r.log(name, m)
				}
			}
		}
	})
	if err != nil {
		return build.Result{}, fmt.Errorf("packer build %s: %w", name, err)
	}
	return result(name, r.Region, code, &c)
}

// Host runs packer as a process on this machine.
type Host struct {
	// Packer is the path to the packer binary.
	Packer string
	// Dir is the repository root; templates and playbooks are relative to it.
	Dir string
	// Env is added to this process's environment (PACKER_PLUGIN_PATH, ...). AWS credentials
	// come from the inherited environment or the default chain, never from arguments.
	Env []string
	// Grace overrides DefaultGrace.
	Grace time.Duration
}

// Run runs packer in its own process group. On cancellation the group gets one SIGINT, as
// from Ctrl-C: Packer terminates its instance and deletes its key pair and security group, and
// is killed if it has not exited within Grace.
func (h Host) Run(ctx context.Context, args []string, line func(string)) (int, error) {
	if h.Packer == "" {
		return 0, errors.New("no packer binary set (run .ci/install-tools: it installs .tools/bin/packer)")
	}
	grace := h.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	cmd := exec.CommandContext(ctx, h.Packer, args...)
	cmd.Dir = h.Dir
	cmd.Env = slices.Concat(os.Environ(), []string{"CHECKPOINT_DISABLE=1"}, h.Env)
	// Own process group: a Ctrl-C in the terminal reaches amichain only, which cancels ctx.
	// Cancel then interrupts the group once, as a Ctrl-C would have: Packer cleans up, its
	// plugins ignore the signal, and what the provisioner runs (ansible, a script) stops.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
			return os.ErrProcessDone
		}
		return nil
	}
	cmd.WaitDelay = grace

	// A pipe of our own, not an io.Writer: Wait then returns when Packer exits, instead of
	// waiting for every process that inherited the pipe (a plugin, a provisioner's child).
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("pipe for packer output: %w", err)
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("cancelled before Packer started: %w", ctx.Err())
		}
		return 0, fmt.Errorf("start %s: %w (run .ci/install-tools, or set the packer path)", h.Packer, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := packerlog.NewScanner(pr)
		for s.Scan() {
			line(s.Text())
		}
	}()
	err = cmd.Wait()
	// Packer is gone; whatever it left in its process group (plugins, provisioner commands,
	// ssh connection masters) goes with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(outputDrain):
		pr.Close() // a process outside the group still holds the pipe: stop reading
		<-done
	}

	if ctx.Err() != nil {
		if killed(cmd) {
			return 0, fmt.Errorf("cancelled, and Packer did not exit within %s of the interrupt so it was killed: look for a leftover builder instance (tag amichain:image): %w", grace, ctx.Err())
		}
		return 0, fmt.Errorf("cancelled; Packer was interrupted and cleaned up (see the log above): %w", ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("wait for %s: %w", h.Packer, err)
	}
	return 0, nil
}

func killed(cmd *exec.Cmd) bool {
	if cmd.ProcessState == nil {
		return false
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func (r *Runner) log(name, s string) {
	if r.Log == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintln(r.Log, strings.TrimSpace("["+name+"] "+s))
}

// lines keeps the last non-empty lines of a command's output, to quote when it fails.
type lines struct{ last []string }

// errors returns the kept lines from Packer's first "Error:" on, skipping its chatter before.
func (l *lines) errors() []string {
	for i, s := range l.last {
		if strings.HasPrefix(s, "Error:") {
			return l.last[i:]
		}
	}
	return l.last
}

func (l *lines) add(s string) {
	if s = strings.TrimSpace(s); s == "" {
		return
	}
	l.last = append(l.last, s)
	if len(l.last) > packerlog.MaxRelevant {
		l.last = l.last[1:]
	}
}
