package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/internal/e2eenv"
	"github.com/amichain/amichain/internal/ec2local"
	"github.com/amichain/amichain/internal/repotest"
	"github.com/amichain/amichain/internal/testtool"
)

// needEngine skips without a Dagger engine, or fails when CI said there is one
// (AMICHAIN_REQUIRE_DAGGER=1, set by .ci/run when it starts the engine kit).
func needEngine(t *testing.T) string {
	dagger, err := exec.LookPath("dagger")
	if err == nil && os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST") != "" && os.Getenv("DAGGER_KIT_REGISTRY") != "" {
		return dagger
	}
	msg := "no Dagger engine: eval \"$(../shared/dagger-engine/setup.sh)\" first (see README.md)"
	if os.Getenv("AMICHAIN_REQUIRE_DAGGER") == "1" {
		t.Fatal(msg + " (AMICHAIN_REQUIRE_DAGGER=1 makes this a failure)")
	}
	t.Skip(msg)
	return ""
}

// TestDaggerEndToEnd runs `dagger call` on the real engine: Packer runs in the toolchain
// container and reaches the local EC2 API and the sshd as host services; the module's own
// code reaches S3 and EC2 the same way.
func TestDaggerEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end Dagger builds are slow")
	}
	dagger := needEngine(t)
	root := testtool.Root(t)
	built, err := exec.Command(filepath.Join(root, "dagger", "toolchain", "build.sh")).CombinedOutput()
	assert.NilError(t, err, "dagger/toolchain/build.sh: %s", built)

	e := e2eenv.Start(t)
	src := e.Clone(t)
	port := func(u string) string { return u[strings.LastIndex(u, ":")+1:] }
	s3Port, ec2Port := port(e.S3.Endpoint), port(e.EC2.URL())
	call := func(t *testing.T, fn ...string) (string, error) {
		args := []string{"--progress=plain", "-m", root, "call",
			"--source", src, "--git", filepath.Join(src, ".git"),
			"--bucket", e.S3.Bucket, "--s3-endpoint", "http://s3:" + s3Port, "--ec2-endpoint", "http://ec2:" + ec2Port,
			"--aws-access-key-id", "env://AWS_ACCESS_KEY_ID", "--aws-secret-access-key", "env://AWS_SECRET_ACCESS_KEY",
			"with-service", "--name", "s3", "--svc", "tcp://localhost:" + s3Port,
			"with-service", "--name", "ec2", "--svc", "tcp://localhost:" + ec2Port,
			"with-service", "--name", "sshd", "--svc", fmt.Sprintf("tcp://localhost:%d", e.SSHD.Port),
			"with-secret-file", "--path", "/run/amichain/ssh_key", "--secret", "file://" + e.SSHD.PrivateKeyPath,
		}
		for k, v := range map[string]string{
			"ssh_host": "sshd", "ssh_port": fmt.Sprint(e.SSHD.Port), "ssh_username": e.SSHD.User,
			"ssh_private_key_file": "/run/amichain/ssh_key",
			"subnet_id":            ec2local.SubnetID, "security_group_id": ec2local.SecurityGroupID,
			"ansible_extra_arguments": e.PackerVars()["ansible_extra_arguments"],
		} {
			args = append(args, "with-packer-var", "--name", k, "--value", v)
		}
		cmd := exec.CommandContext(t.Context(), dagger, append(args, fn...)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		t.Logf("dagger call %s: %s\n%s", fn, time.Since(start).Round(time.Second), stdout.String())
		assert.Check(t, !strings.Contains(stdout.String()+stderr.String(), "e2e-dummy-secret"), "a secret leaked into the output")
		if err != nil {
			t.Logf("stderr (tail):\n%s", tail(stderr.String(), 60))
		}
		return stdout.String(), err
	}

	// 1. build-all builds the five images, base first, each child from base's new AMI.
	out, err := call(t, "build-all")
	assert.NilError(t, err)
	assert.Check(t, is.Contains(out, "5 built, 0 reused, 0 up to date, 0 failed"))
	launches := e.EC2.Launches()
	assert.Equal(t, len(launches), 5)
	assert.Equal(t, launches[0].ImageID, e2eenv.UpstreamAMI)
	baseAMI := currentAMI(t, e, "base")
	for _, l := range launches[1:] {
		assert.Check(t, is.Equal(l.ImageID, baseAMI))
	}

	// 2. A second build-all builds nothing.
	out, err = call(t, "build-all")
	assert.NilError(t, err)
	assert.Check(t, is.Contains(out, "0 built, 0 reused, 5 up to date"))
	assert.Equal(t, len(e.EC2.Launches()), 5)

	// ids lists the records; one image's function returns that image (up to date: no build).
	out, err = call(t, "ids")
	assert.NilError(t, err)
	assert.Check(t, is.Contains(out, baseAMI))
	out, err = call(t, "web", "ami")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(strings.TrimSpace(out), currentAMI(t, e, "web")))
	assert.Equal(t, len(e.EC2.Launches()), 5)

	// 3. After a role edit, plan names the file and only the image that uses it.
	repotest.Append(t, src, workerRole, "# tuned\n")
	out, err = call(t, "plan")
	assert.NilError(t, err)
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] == "IMAGE" {
			continue
		}
		if fields[0] == "worker" {
			assert.Check(t, is.Equal(fields[1], "stale"), line)
			assert.Check(t, is.Contains(line, workerRole+" changed"))
		} else if len(fields) > 2 && fields[1] == "up" {
			continue
		} else if fields[0] != "1" {
			t.Errorf("only worker may be stale: %s", line)
		}
	}
}
