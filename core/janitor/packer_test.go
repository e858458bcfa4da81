package janitor_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/janitor"
	"github.com/amichain/amichain/internal/ec2local"
	"github.com/amichain/amichain/internal/testtool"
)

// TestKilledPackerRunIsSweptByTheNext runs the real Packer on the product template without a
// key pair or security group given, so it makes its own, kills it (SIGKILL: no cleanup) once
// the builder instance runs, and sweeps as the next run would.
func TestKilledPackerRunIsSweptByTheNext(t *testing.T) {
	packer, plugins := testtool.Find(t, "packer"), testtool.PluginDir(t)
	root := testtool.Root(t)
	srv, err := ec2local.Start(t.Context(), ec2local.Options{Images: []ec2local.Image{{ID: upstream, Name: "debian-12"}}})
	assert.NilError(t, err)
	t.Cleanup(func() { srv.Close() })
	c := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "test-secret", "")})

	// SSH goes to a port nobody answers: Packer waits there with everything created.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	vars := map[string]string{
		"image_name": "web", "parent_ami": upstream, "fingerprint": "sha256-0123456789abcdef", "playbook": "ansible/web.yml",
		"ec2_endpoint": srv.URL(), "subnet_id": ec2local.SubnetID, "ssh_port": fmt.Sprint(port),
		"run_id": "run-killed", "builder_lifetime": "1s",
	}
	args := []string{"build", "-machine-readable"}
	for k, v := range vars {
		args = append(args, "-var", k+"="+v)
	}
	cmd := exec.Command(packer, append(args, filepath.Join(root, "packer", "image.pkr.hcl"))...)
	home := t.TempDir()
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "AWS_") })
	cmd.Env = append(cmd.Env, "PACKER_PLUGIN_PATH="+plugins, "CHECKPOINT_DISABLE=1",
		"PACKER_CONFIG_DIR="+home, "PACKER_CACHE_DIR="+filepath.Join(home, "cache"),
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=ec2local-dummy-secret", "AWS_EC2_METADATA_DISABLED=true")
	// Its own process group, so that the kill takes the plugin processes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out testtool.Output
	cmd.Stdout, cmd.Stderr = &out, &out
	assert.NilError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	deadline := time.After(2 * time.Minute)
	for !slices.Contains(srv.Calls(), "RunInstances") || len(srv.Launches()) == 0 {
		select {
		case err := <-exited:
			t.Fatalf("packer exited (%v) before launching an instance; EC2 calls %v; output:\n%s", err, srv.Calls(), out.String())
		case <-deadline:
			t.Fatalf("no instance launched in 2 minutes; EC2 calls %v; output:\n%s", srv.Calls(), out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	time.Sleep(500 * time.Millisecond) // let it reach the SSH wait
	assert.NilError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL))
	<-exited
	t.Logf("EC2 calls before the kill: %v", srv.Calls())

	// The next run, past the killed run's expiry.
	rep, err := janitor.Sweep(t.Context(), c, "us-east-1", janitor.Options{Now: time.Now().Add(2 * time.Second), RunID: "run-next"})
	assert.NilError(t, err)
	t.Logf("sweep:\n%s", rep)
	var kinds []string
	for _, l := range rep.Leftovers {
		kinds = append(kinds, l.Kind)
		assert.Equal(t, l.RunID, "run-killed")
		assert.Equal(t, l.Action, "removed")
	}
	assert.DeepEqual(t, kinds, []string{janitor.Instance, janitor.KeyPair, janitor.SecurityGroup})
	running, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
	assert.NilError(t, err)
	for _, r := range running.Reservations {
		for _, i := range r.Instances {
			assert.Equal(t, string(i.State.Name), "terminated", aws.ToString(i.InstanceId))
		}
	}
}
