// Package e2eenv starts everything an end-to-end build needs on this machine, with no AWS:
// a git repository of image sources, the local EC2 API, a loopback sshd standing in for every
// instance, and an S3 server for the records; and it runs amichain the way production does,
// `dagger call` on the module, with those as stand-ins.
package e2eenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/internal/ec2local"
	"github.com/amichain/amichain/internal/s3test"
	"github.com/amichain/amichain/internal/sshd"
	"github.com/amichain/amichain/internal/ssmlocal"
	"github.com/amichain/amichain/internal/testtool"
)

// Region is where the local EC2 API builds.
const Region = "us-east-1"

// UpstreamAMI is the Debian image the local EC2 API offers to the tree's upstream lookup.
const UpstreamAMI = "ami-0000000000000deb1"

// BuilderLifetime is how long a builder instance lives before a later run may remove it even
// if its run still held its lease: longer than the test, so the lease alone decides.
const BuilderLifetime = time.Hour

// LeaseTTL is how long a killed run's build lease outlives it (the module's --lease-ttl).
const LeaseTTL = 15 * time.Second

// Secret is the secret access key the module is given; it must never appear in any output.
const Secret = "e2e-dummy-secret"

// Env is a running end-to-end environment.
type Env struct {
	// Repo is a git repository holding the image sources, with one commit.
	Repo  string
	EC2   *ec2local.Server
	SSM   *ssmlocal.Server
	SSHD  *sshd.Server
	S3    *s3test.Server
	Store *record.Store
	// Scratch is where the fixture playbooks write on the "instance" (the loopback sshd).
	Scratch string
	// Cancel is the signal a cancelled Call sends dagger first: SIGINT (GitHub Actions, the
	// default) or SIGTERM (Buildkite).
	Cancel os.Signal
	dagger string
	module string
}

// Start starts the environment; everything stops when the test ends. The repository holds
// the product's amichain.yaml, toolchain.env and Packer template with the fixture playbooks
// of fixtures (e2e/testdata/ansible): they write under Scratch instead of changing this
// machine, while the shipped roles are proven in containers (the container target).
func Start(t *testing.T, fixtures string) *Env {
	t.Helper()
	e := &Env{Scratch: t.TempDir(), dagger: testtool.Dagger(t), module: testtool.Root(t), Cancel: os.Interrupt}
	testtool.Find(t, "git")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDE2EEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", Secret)

	e.SSHD = sshd.StartTest(t)
	var err error
	e.EC2, err = ec2local.Start(t.Context(), ec2local.Options{Region: Region, Images: []ec2local.Image{
		{ID: "ami-0000000000000deb0", Name: "debian-12-amd64-20261001-1", OwnerID: "136693071363", CreationDate: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)},
		{ID: UpstreamAMI, Name: "debian-12-amd64-20261101-2", OwnerID: "136693071363", CreationDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "ami-0000000000000ba5e", Name: "debian-12-amd64-20261201-3", OwnerID: "999999999999", CreationDate: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
	}})
	assert.NilError(t, err)
	t.Cleanup(func() { e.EC2.Close() })
	e.SSM, err = ssmlocal.Start(t.Context(), ssmlocal.Options{Region: Region})
	assert.NilError(t, err)
	t.Cleanup(func() { e.SSM.Close() })
	e.S3 = s3test.StartFake(t)
	e.Store = record.NewStore(e.S3.Client, record.Config{Bucket: e.S3.Bucket, Prefix: "amichain"})

	e.Repo = t.TempDir()
	for _, s := range []string{"amichain.yaml", "toolchain.env"} {
		data, err := os.ReadFile(filepath.Join(e.module, s))
		assert.NilError(t, err)
		assert.NilError(t, os.WriteFile(filepath.Join(e.Repo, s), data, 0o644))
	}
	assert.NilError(t, os.CopyFS(filepath.Join(e.Repo, "packer"), os.DirFS(filepath.Join(e.module, "packer"))))
	assert.NilError(t, os.CopyFS(filepath.Join(e.Repo, "ansible"), os.DirFS(fixtures)))
	vars := fmt.Sprintf("---\n# Written by the end-to-end test: where the fixture roles write.\ne2e_scratch: %s\n", e.Scratch)
	assert.NilError(t, os.MkdirAll(filepath.Join(e.Repo, "ansible", "group_vars"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(e.Repo, "ansible", "group_vars", "all.yml"), []byte(vars), 0o644))
	e.Git(t, e.Repo, "init", "-q", "-b", "main")
	e.Commit(t, "image sources")
	return e
}

// Git runs git in dir.
func (e *Env) Git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com")
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// Commit commits everything in the repository.
func (e *Env) Commit(t *testing.T, msg string) {
	t.Helper()
	e.Git(t, e.Repo, "add", "-A")
	e.Git(t, e.Repo, "commit", "-q", "--allow-empty", "-m", msg)
}

// Clone makes a fresh clone of the repository, as a new CI machine would: every file new.
func (e *Env) Clone(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clone")
	e.Git(t, e.Repo, "clone", "-q", "--no-local", e.Repo, dir)
	return dir
}

// Output is what one `dagger call` printed.
type Output struct {
	Stdout, Stderr string
	Wall           time.Duration
}

// Call runs `dagger call` on the module over the checkout at src, the way ci/dagger-call.sh
// does, with the stand-ins for AWS given in one with-stand-ins call, then fn (e.g. build-all).
func (e *Env) Call(ctx context.Context, t *testing.T, src string, flags []string, fn ...string) (Output, error) {
	t.Helper()
	port := func(u string) string { return u[strings.LastIndex(u, ":")+1:] }
	s3Port, ec2Port, ssmPort, sshPort := port(e.S3.Endpoint), port(e.EC2.URL()), port(e.SSM.URL()), fmt.Sprint(e.SSHD.Port)
	args := append([]string{"--progress=plain", "-m", e.module, "call",
		"--source", src, "--git", filepath.Join(src, ".git"),
		"--bucket", e.S3.Bucket, "--region", Region,
		"--aws-access-key-id", "env://AWS_ACCESS_KEY_ID", "--aws-secret-access-key", "env://AWS_SECRET_ACCESS_KEY",
		"--records-endpoint", "http://s3:" + s3Port, "--compute-endpoint", "http://ec2:" + ec2Port,
		"--params-endpoint", "http://ssm:" + ssmPort, "--lease-ttl", LeaseTTL.String(),
	}, flags...)
	args = append(args, "with-stand-ins",
		"--services", strings.Join([]string{"tcp://localhost:" + s3Port, "tcp://localhost:" + ec2Port,
			"tcp://localhost:" + ssmPort, "tcp://localhost:" + sshPort}, ","),
		"--service-names", "s3,ec2,ssm,sshd",
		"--packer-vars", strings.Join([]string{
			"ssh_host=sshd", "ssh_port=" + sshPort, "ssh_username=" + e.SSHD.User,
			"ssh_private_key_file=/run/amichain/ssh_key",
			"subnet_id=" + ec2local.SubnetID, "security_group_id=" + ec2local.SecurityGroupID,
			// The local EC2 API has no STS, regions list or metadata service.
			"skip_credential_validation=true", "skip_region_validation=true", "skip_metadata_api_check=true",
			// A killed run's builder is a leftover once this is over, or its lease is gone.
			"builder_lifetime=" + BuilderLifetime.String(),
		}, ","),
		"--secret-files", "file://"+e.SSHD.PrivateKeyPath, "--secret-paths", "/run/amichain/ssh_key",
	)
	cmd := exec.CommandContext(ctx, e.dagger, append(args, fn...)...)
	// Cancel as CI systems do: a signal first, then kill.
	cmd.Cancel = func() error { return cmd.Process.Signal(e.Cancel) }
	cmd.WaitDelay = time.Minute
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	out := Output{Stdout: stdout.String(), Stderr: stderr.String(), Wall: time.Since(start)}
	t.Logf("dagger call %s: %s, exit %v\n%s", strings.Join(fn, " "), out.Wall.Round(time.Millisecond), err, out.Stdout)
	assert.Check(t, !strings.Contains(out.Stdout+out.Stderr, Secret), "a secret leaked into dagger's output")
	if err != nil {
		t.Logf("stderr (tail):\n%s", Tail(out.Stderr, 80))
	}
	return out, err
}

// Failure returns the error dagger printed last on stderr: what a failed function returned.
func (o Output) Failure() string {
	i := strings.LastIndex(o.Stderr, "\nError: ")
	if i < 0 {
		return ""
	}
	return o.Stderr[i+1:]
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
