package sshd_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/amichain/amichain/internal/sshd"
)

func TestLogin(t *testing.T) {
	srv := sshd.StartTest(t)
	other := filepath.Join(t.TempDir(), "other")
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput()
	assert.NilError(t, err, string(out))

	tests := []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
	}{
		{name: "authorized key runs a command", args: srv.SSHArgs(), wantOut: "hello"},
		{name: "other key is refused", args: replaceKey(srv.SSHArgs(), other), wantErr: "Permission denied"},
		{
			name:    "password is not offered",
			args:    append(replaceKey(srv.SSHArgs(), other), "-o", "PreferredAuthentications=password,keyboard-interactive"),
			wantErr: "Permission denied (publickey)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, srv.User+"@127.0.0.1", "echo hello")
			out, err := exec.Command("ssh", args...).CombinedOutput()
			if tc.wantErr != "" {
				assert.Assert(t, err != nil, "login succeeded: %s", out)
				assert.Assert(t, is.Contains(string(out), tc.wantErr))
				return
			}
			assert.NilError(t, err, string(out))
			assert.Equal(t, strings.TrimSpace(string(out)), tc.wantOut)
		})
	}
}

func TestCloseStopsServer(t *testing.T) {
	srv := sshd.StartTest(t)
	assert.NilError(t, srv.Close())
	out, err := exec.Command("ssh", append(srv.SSHArgs(), "-o", "ConnectTimeout=5", srv.User+"@127.0.0.1", "true")...).CombinedOutput()
	assert.Assert(t, err != nil, "ssh still works after Close: %s", out)
	assert.Assert(t, is.Contains(string(out), "Connection refused"))
	assert.NilError(t, srv.Close(), "a second Close is harmless")
}

func TestStartFailsClearly(t *testing.T) {
	_, err := sshd.Start(t.Context(), filepath.Join(t.TempDir(), "no-sshd"), t.TempDir())
	assert.ErrorContains(t, err, "no-sshd")
}

func replaceKey(args []string, key string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == "-i" {
			out[i+1] = key
		}
	}
	return out
}
