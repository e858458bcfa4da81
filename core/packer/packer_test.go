package packer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/packer"
	"github.com/amichain/amichain/core/tree"
	"github.com/amichain/amichain/internal/testtool"
)

func request(template string, vars map[string]string) build.Request {
	return build.Request{
		Image:       tree.Image{Name: "web", Parent: "base", Template: template, Playbook: "ansible/web.yml", Vars: vars},
		ParentAMI:   "ami-0parent",
		Fingerprint: "3f2a9c0d1e4b5a69",
		Commit:      "abc123",
	}
}

// scripted is an Exec that records the commands it is given and answers the build with a
// canned exit code and output.
type scripted struct {
	calls    [][]string
	exitCode int
	output   string
}

func (s *scripted) Run(_ context.Context, args []string, line func(string)) (int, error) {
	s.calls = append(s.calls, args)
	if args[0] != "build" {
		return 0, nil
	}
	for _, l := range strings.Split(strings.TrimSuffix(s.output, "\n"), "\n") {
		line(l)
	}
	return s.exitCode, nil
}

func TestCommandsPassTheVerifyPlaybook(t *testing.T) {
	exec := &scripted{output: "1732540115,amazon-ebs.image,artifact,0,id,eu-west-1:ami-1"}
	r := &packer.Runner{Exec: exec, Region: "eu-west-1"}
	req := request("packer/image.pkr.hcl", nil)
	req.Image.Verify = "ansible/verify/web.yml"
	_, err := r.Build(context.Background(), req)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(exec.calls, 3))
	assert.Check(t, is.Contains(exec.calls[2], "verify_playbook=ansible/verify/web.yml"))

	r.Vars = map[string]string{"verify_playbook": "x.yml"}
	_, err = r.Build(context.Background(), request("packer/image.pkr.hcl", nil))
	assert.ErrorContains(t, err, `"verify_playbook", which amichain sets itself`)
}

func TestCommands(t *testing.T) {
	amichainVars := []string{
		"-var", "fingerprint=3f2a9c0d1e4b5a69",
		"-var", "git_commit=abc123",
		"-var", "image_name=web",
	}
	tail := []string{
		"-var", "parent_ami=ami-0parent",
		"-var", "playbook=ansible/web.yml",
		"-var", "region=eu-west-1",
	}
	for _, tc := range []struct {
		name      string
		imageVars map[string]string
		extra     map[string]string
		region    string
		wantVars  []string
		wantErr   string
	}{
		{
			name:     "amichain's variables only",
			region:   "eu-west-1",
			wantVars: append(append([]string{}, amichainVars...), tail...),
		},
		{
			name:      "image vars, then runner vars win",
			imageVars: map[string]string{"volume_size": "50", "instance_type": "t3.large"},
			extra:     map[string]string{"instance_type": "t3.micro", "ec2_endpoint": "http://127.0.0.1:4566"},
			region:    "eu-west-1",
			wantVars: append(append(append([]string{}, "-var", "ec2_endpoint=http://127.0.0.1:4566"), amichainVars...),
				append([]string{"-var", "instance_type=t3.micro"}, append(tail, "-var", "volume_size=50")...)...),
		},
		{
			name:      "image vars may not set a reserved variable",
			imageVars: map[string]string{"fingerprint": "x"},
			region:    "eu-west-1",
			wantErr:   `packer: image web vars (amichain.yaml) set "fingerprint", which amichain sets itself: remove it`,
		},
		{
			name:    "runner vars may not set the region",
			extra:   map[string]string{"region": "us-west-2"},
			region:  "eu-west-1",
			wantErr: `packer: runner vars set "region", which amichain sets itself: remove it`,
		},
		{
			name:    "no region",
			wantErr: "packer: image web: no region set (set the runner's Region)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec := &scripted{output: "1732540115,amazon-ebs.image,artifact,0,id," + tc.region + ":ami-1"}
			r := &packer.Runner{Exec: exec, Vars: tc.extra, Region: tc.region}
			_, err := r.Build(context.Background(), request("packer/image.pkr.hcl", tc.imageVars))
			if tc.wantErr != "" {
				assert.Error(t, err, tc.wantErr)
				assert.Check(t, is.Len(exec.calls, 0), "nothing may run")
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, exec.calls, [][]string{
				{"init", "packer/image.pkr.hcl"},
				append(append([]string{"validate"}, tc.wantVars...), "packer/image.pkr.hcl"),
				append(append([]string{"build", "-machine-readable", "-color=false"}, tc.wantVars...), "packer/image.pkr.hcl"),
			})
		})
	}
}

func TestJudgeBuild(t *testing.T) {
	artifact := func(i, id string) string {
		return "1732540115,amazon-ebs.image,artifact," + i + ",id," + id + "\n"
	}
	for _, tc := range []struct {
		name     string
		exitCode int
		output   string
		want     build.Result
		wantErr  string
	}{
		{
			name:   "one region",
			output: "1732540115,,ui,say,==> amazon-ebs.image: Creating AMI tags\n" + artifact("0", "us-east-1:ami-1"),
			want:   build.Result{Region: "us-east-1", AMIs: map[string]string{"us-east-1": "ami-1"}},
		},
		{
			name:   "copies, listed twice by the manifest post-processor",
			output: artifact("0", "eu-west-1:ami-2%!(PACKER_COMMA)us-east-1:ami-1") + artifact("1", "eu-west-1:ami-2%!(PACKER_COMMA)us-east-1:ami-1"),
			want:   build.Result{Region: "us-east-1", AMIs: map[string]string{"us-east-1": "ami-1", "eu-west-1": "ami-2"}},
		},
		{
			name:     "non-zero exit wins over an AMI id",
			exitCode: 1,
			output:   artifact("0", "us-east-1:ami-1") + "1732540115,,ui,error,Error: post-processor failed\n",
			wantErr:  "packer build web failed (exit 1): Error: post-processor failed; full log above",
		},
		{
			name:     "failure without an error line",
			exitCode: 1,
			wantErr:  "packer build web failed (exit 1): Packer printed no error; full log above",
		},
		{
			name:    "exit 0 without an AMI",
			output:  "1732540115,null.image,artifact,0,id,Null\n",
			wantErr: "packer build web exited 0 but reported no AMI id (artifact ids: map[null.image:[Null]]): the template must build with amazon-ebs; full log above",
		},
		{
			name:    "AMI in another region only",
			output:  artifact("0", "eu-west-1:ami-2"),
			wantErr: "packer build web reported no AMI in us-east-1 (got map[eu-west-1:ami-2]): check the template's region",
		},
		{
			name:    "two builds",
			output:  artifact("0", "us-east-1:ami-1") + "1732540115,amazon-ebs.other,artifact,0,id,us-east-1:ami-3\n",
			wantErr: "packer build web reported AMIs from 2 builds (amazon-ebs.image, amazon-ebs.other): the template must have exactly one",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &packer.Runner{Exec: &scripted{exitCode: tc.exitCode, output: tc.output}, Region: "us-east-1"}
			got, err := r.Build(context.Background(), request("packer/image.pkr.hcl", nil))
			if tc.wantErr != "" {
				assert.Error(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

// newRunner runs packer on the templates in testdata, with scratch plugin and config dirs.
func newRunner(t *testing.T, script string) (*packer.Runner, *bytes.Buffer) {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	assert.NilError(t, err)
	scratch := t.TempDir()
	var log bytes.Buffer
	return &packer.Runner{
		Exec: packer.Host{
			Packer: testtool.Find(t, "packer"),
			Dir:    dir,
			Env:    []string{"PACKER_PLUGIN_PATH=" + filepath.Join(scratch, "plugins"), "PACKER_CONFIG_DIR=" + scratch},
			Grace:  time.Minute,
		},
		Vars:   map[string]string{"script": script},
		Region: "us-east-1",
		Log:    &log,
	}, &log
}

func TestBuildFails(t *testing.T) {
	for _, tc := range []struct {
		name      string
		template  string
		script    string
		imageVars map[string]string
		wantErr   []string
		wantLog   []string
	}{
		{
			name:     "failing provisioner",
			template: "null.pkr.hcl",
			script:   "echo provisioning $IMAGE_NAME; echo 'the widget is broken' >&2; exit 3",
			wantErr: []string{
				"packer build web failed (exit 1): ",
				"null.image: the widget is broken",
				"Script exited with non-zero exit status: 3",
				"; full log above",
			},
			wantLog: []string{"[web] ==> null.image: Running local shell script", "[web]     null.image: provisioning web"},
		},
		{
			name:     "no AMI id",
			template: "null.pkr.hcl",
			script:   "true",
			wantErr:  []string{"packer build web exited 0 but reported no AMI id (artifact ids: map[null.image:[Null]])"},
			wantLog:  []string{"[web] Build 'null.image' finished after"},
		},
		{
			name:     "invalid template",
			template: "invalid.pkr.hcl",
			script:   "touch built",
			wantErr:  []string{"packer validate web failed (exit 1): Error: Unsupported argument | ", `An argument named "instance_type" is not expected here`},
		},
		{
			name:      "undeclared image variable",
			template:  "null.pkr.hcl",
			script:    "touch built",
			imageVars: map[string]string{"volume_size": "50"},
			wantErr:   []string{`packer validate web failed (exit 1): Error: Undefined -var variable | A "volume_size" variable was passed`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, log := newRunner(t, tc.script)
			// The script runs in the test's scratch dir so a build that should not run leaves a trace.
			work := t.TempDir()
			r.Vars["script"] = "cd " + work + " && " + tc.script
			_, err := r.Build(context.Background(), request(tc.template, tc.imageVars))
			t.Log(log.String())
			assert.Assert(t, err != nil)
			for _, want := range tc.wantErr {
				assert.Assert(t, is.Contains(err.Error(), want))
			}
			for _, want := range tc.wantLog {
				assert.Assert(t, is.Contains(log.String(), want))
			}
			_, statErr := os.Stat(filepath.Join(work, "built"))
			assert.Assert(t, errors.Is(statErr, os.ErrNotExist), "the build ran although validate failed")
		})
	}
}

func TestBuildCancel(t *testing.T) {
	work := t.TempDir()
	// The script ignores the interrupt the whole process group gets, as a provisioner busy in
	// a long task may: then it is Packer's handling of the interrupt that ends the build,
	// whichever process the kernel signals first.
	script := `trap '' INT; cd ` + work + ` && echo $$ > pid.tmp && mv pid.tmp pid
exec sleep 120`
	r, log := newRunner(t, script)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Interrupt once the provisioner runs; give up when Build returns without it.
		defer cancel()
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(work, "pid")); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_, err := r.Build(ctx, request("null.pkr.hcl", nil))
	t.Log(log.String())
	assert.Assert(t, errors.Is(err, context.Canceled), "got %v", err)
	assert.Assert(t, is.Contains(err.Error(), "packer build web: cancelled; Packer was interrupted and cleaned up"))
	assert.Assert(t, is.Contains(log.String(), "[web] Cancelling build after receiving interrupt"))
	assert.Assert(t, is.Contains(log.String(), "Cleanly cancelled builds after being interrupted."))

	data, err := os.ReadFile(filepath.Join(work, "pid"))
	assert.NilError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	assert.NilError(t, err)
	// Killed processes take a moment to go, and an orphan lingers as a zombie until reaped.
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, os.ErrNotExist) || strings.Contains(string(stat), ") Z ") {
			return poll.Success()
		}
		return poll.Continue("the provisioner's process (pid %d) is still running", pid)
	}, poll.WithTimeout(10*time.Second))
}
