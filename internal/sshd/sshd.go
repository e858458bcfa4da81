// Package sshd runs a real OpenSSH server on loopback for tests: its own config, host key and
// one authorized client key, key authentication only, for the current user.
package sshd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/amichain/amichain/internal/testtool"
)

// Server is a running sshd.
type Server struct {
	Port           int
	User           string
	PrivateKeyPath string
	// KnownHostsPath holds the server's host key, for clients that check it.
	KnownHostsPath string

	cmd  *exec.Cmd
	log  *testtool.Output
	done chan struct{}
}

// Start runs sshd (the binary at sshdPath, an absolute path) with its keys and config in dir,
// and returns once a real ssh login works.
func Start(ctx context.Context, sshdPath, dir string) (*Server, error) {
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("sshd: current user: %w", err)
	}
	// sshd re-executes itself and refuses a relative path; the config needs absolute paths too.
	if sshdPath, err = filepath.Abs(sshdPath); err != nil {
		return nil, fmt.Errorf("sshd: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("sshd: %w", err)
	}
	s := &Server{User: u.Username, PrivateKeyPath: filepath.Join(dir, "client_ed25519"), KnownHostsPath: filepath.Join(dir, "known_hosts")}
	hostKey := filepath.Join(dir, "host_ed25519")
	for _, key := range []string{hostKey, s.PrivateKeyPath} {
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "amichain-test", "-f", key).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("sshd: ssh-keygen %s: %w: %s", key, err, out)
		}
	}
	clientPub, err := os.ReadFile(s.PrivateKeyPath + ".pub")
	if err != nil {
		return nil, fmt.Errorf("sshd: %w", err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, clientPub, 0o600); err != nil {
		return nil, fmt.Errorf("sshd: %w", err)
	}
	if os.Geteuid() == 0 {
		// sshd started as root insists on its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("sshd: privilege separation directory: %w", err)
		}
	}
	if s.Port, err = freePort(); err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile none
AuthorizedKeysFile %s
AllowUsers %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
# bash sources ~/.bashrc for every command sshd runs unless it is a nested shell; a developer's
# .bashrc (pyenv, nvm...) would add seconds to each Ansible task here, and nothing to the test.
SetEnv SHLVL=1
`, s.Port, hostKey, authorized, s.User)
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("sshd: %w", err)
	}
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, fmt.Errorf("sshd: %w", err)
	}
	known := fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, hostPub)
	if err := os.WriteFile(s.KnownHostsPath, []byte(known), 0o600); err != nil {
		return nil, fmt.Errorf("sshd: %w", err)
	}

	s.log, s.done = &testtool.Output{}, make(chan struct{})
	s.cmd = exec.Command(sshdPath, "-D", "-e", "-f", config)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	// Own process group: Close also ends the per-connection children.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("sshd: start %s: %w", sshdPath, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }() //nolint:errcheck // an exit is reported by waitReady
	if err := s.waitReady(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// SSHArgs are the ssh options that log in to s without prompts.
func (s *Server) SSHArgs() []string {
	return []string{"-F", "/dev/null", "-i", s.PrivateKeyPath, "-p", strconv.Itoa(s.Port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + s.KnownHostsPath, "-o", "StrictHostKeyChecking=yes"}
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error
	for {
		select {
		case <-s.done:
			return fmt.Errorf("sshd exited: %s", s.Log())
		case <-ctx.Done():
			return fmt.Errorf("sshd not ready on port %d: %v: %w; sshd log: %s", s.Port, last, ctx.Err(), s.Log())
		case <-time.After(50 * time.Millisecond):
		}
		args := append(s.SSHArgs(), s.User+"@127.0.0.1", "true")
		out, err := exec.CommandContext(ctx, "ssh", args...).CombinedOutput()
		if err == nil {
			return nil
		}
		last = fmt.Errorf("ssh: %w: %s", err, bytes.TrimSpace(out))
	}
}

// Log is what sshd wrote so far (it runs with -e: errors and logins).
func (s *Server) Log() string { return s.log.String() }

// Close stops sshd and its sessions.
func (s *Server) Close() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("sshd: stop: %w", err)
	}
	<-s.done
	return nil
}

// StartTest starts sshd for t in a temporary directory and stops it when t ends. Without an
// sshd binary t is skipped, or fails when AMICHAIN_REQUIRE_TOOLS=1.
func StartTest(t testing.TB) *Server {
	t.Helper()
	s, err := Start(t.Context(), testtool.Find(t, "sshd"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("sshd: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
