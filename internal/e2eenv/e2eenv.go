// Package e2eenv starts everything an end-to-end build needs on this machine, with no AWS:
// a git repository of the image sources, the local EC2 API, a loopback sshd standing in for
// every instance, and an S3 server for the records.
package e2eenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/core/build"
	"github.com/amichain/amichain/core/packer"
	"github.com/amichain/amichain/core/record"
	"github.com/amichain/amichain/core/run"
	"github.com/amichain/amichain/core/upstream"
	"github.com/amichain/amichain/internal/ec2local"
	"github.com/amichain/amichain/internal/repotest"
	"github.com/amichain/amichain/internal/s3test"
	"github.com/amichain/amichain/internal/sshd"
	"github.com/amichain/amichain/internal/testtool"
)

// Region is where the local EC2 API builds.
const Region = "us-east-1"

// UpstreamAMI is the Debian image the local EC2 API offers to the tree's upstream lookup.
const UpstreamAMI = "ami-0000000000000deb1"

// Env is a running end-to-end environment.
type Env struct {
	// Repo is a git repository holding the image sources, with one commit.
	Repo  string
	EC2   *ec2local.Server
	SSHD  *sshd.Server
	S3    *s3test.Server
	Store *record.Store
	// Scratch is where Ansible writes instead of / (amichain_root).
	Scratch string
	Packer  string
	Plugins string
}

// Start starts the environment; everything stops when the test ends.
func Start(t *testing.T) *Env {
	t.Helper()
	e := &Env{
		Packer:  testtool.Find(t, "packer"),
		Plugins: testtool.PluginDir(t),
		Scratch: t.TempDir(),
	}
	testtool.Find(t, "ansible-playbook")
	testtool.Find(t, "git")
	// The SDK's default chain (upstream lookup) and Packer read these; the fakes ignore them.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDE2EEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "e2e-dummy-secret")
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	e.SSHD = sshd.StartTest(t)
	var err error
	e.EC2, err = ec2local.Start(t.Context(), ec2local.Options{Region: Region, Images: []ec2local.Image{
		{ID: "ami-0000000000000deb0", Name: "debian-12-amd64-20261001-1", OwnerID: "136693071363", CreationDate: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)},
		{ID: UpstreamAMI, Name: "debian-12-amd64-20261101-2", OwnerID: "136693071363", CreationDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "ami-0000000000000ba5e", Name: "debian-12-amd64-20261201-3", OwnerID: "999999999999", CreationDate: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
	}})
	assert.NilError(t, err)
	t.Cleanup(func() { e.EC2.Close() })
	e.S3 = s3test.StartFake(t)
	e.Store = record.NewStore(e.S3.Client, record.Config{Bucket: e.S3.Bucket, Prefix: "amichain"})

	e.Repo = repotest.Copy(t)
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

// PackerVars point Packer at the local EC2 API and the loopback sshd, and make Ansible write
// under Scratch and leave this machine's packages and services alone.
func (e *Env) PackerVars() map[string]string {
	return map[string]string{
		"ec2_endpoint":            e.EC2.URL(),
		"subnet_id":               ec2local.SubnetID,
		"security_group_id":       ec2local.SecurityGroupID,
		"ssh_username":            e.SSHD.User,
		"ssh_port":                fmt.Sprint(e.SSHD.Port),
		"ssh_private_key_file":    e.SSHD.PrivateKeyPath,
		"ansible_extra_arguments": fmt.Sprintf(`["--skip-tags", "system", "-e", "amichain_root=%s"]`, e.Scratch),
	}
}

// Runner is the real Packer runner for a checkout at dir.
func (e *Env) Runner(t *testing.T, dir string, log io.Writer) *packer.Runner {
	home := t.TempDir()
	return &packer.Runner{
		Packer: e.Packer,
		Dir:    dir,
		Env: []string{"PACKER_PLUGIN_PATH=" + e.Plugins, "PACKER_CONFIG_DIR=" + home,
			"PACKER_CACHE_DIR=" + filepath.Join(home, "cache")},
		Vars:   e.PackerVars(),
		Region: Region,
		Log:    log,
	}
}

// Build runs amichain over the checkout at dir with the real Packer runner.
func (e *Env) Build(ctx context.Context, t *testing.T, dir string, log io.Writer, force ...string) (build.Summary, error) {
	t.Helper()
	r, err := e.Load(ctx, t, dir, e.Runner(t, dir, log), force...)
	if err != nil {
		return build.Summary{}, err
	}
	return r.Build(ctx, "")
}

// Load loads a run over the checkout at dir.
func (e *Env) Load(ctx context.Context, t *testing.T, dir string, b build.Builder, force ...string) (*run.Run, error) {
	t.Helper()
	ec2c, err := upstream.NewClient(ctx, Region, e.EC2.URL(), nil)
	assert.NilError(t, err)
	return run.Load(ctx, run.Options{
		Source: os.DirFS(dir), Records: e.Store, EC2: ec2c, Builder: b, Force: force,
		Parallel: 4, Commit: e.Git(t, dir, "rev-parse", "HEAD"), Branch: "main",
	})
}
