package s3test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/amichain/amichain/internal/testtool"
)

// StartVersitygw runs the versitygw binary with a posix backend in a temporary directory until
// the test ends. Without the binary the test is skipped, or fails when AMICHAIN_REQUIRE_TOOLS=1.
func StartVersitygw(t testing.TB) *Server {
	t.Helper()
	bin := testtool.Find(t, "versitygw")
	dir := t.TempDir()
	data, versions := filepath.Join(dir, "data"), filepath.Join(dir, "versions")
	for _, d := range []string{data, versions} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	s := newServer("http://" + addr)
	s.ChecksSignatures = true

	var out testtool.Output
	cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", addr,
		"posix", "--versioning-dir", versions, data)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Killed with the test binary, even by SIGKILL, which runs no cleanup.
		Pdeathsig: syscall.SIGKILL,
		// Its own process group, so that the cleanup also stops anything it started.
		Setpgid: true,
	}
	exited, err := startLocked(cmd)
	if err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	s.PID = cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr := <-exited
		exited <- werr
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, err := s.Client.ListBuckets(ctx, &s3.ListBucketsInput{})
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			exited <- werr // let the cleanup's receive return
			t.Fatalf("versitygw exited before answering (%v); its output:\n%s", werr, out.String())
		case <-ctx.Done():
			t.Fatalf("versitygw did not answer on %s within 30s: %v; its output:\n%s", addr, err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.createBucket(t)
	return s
}

// startLocked starts cmd from a goroutine locked to its OS thread for the child's life: the
// kernel sends Pdeathsig when the thread that started the child exits, and the Go runtime
// may end an idle thread at any time. The channel yields cmd.Wait's result.
func startLocked(cmd *exec.Cmd) (chan error, error) {
	started, exited := make(chan error, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine, after the child
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

// freeAddr picks a loopback port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ClosedEndpoint returns the URL of a loopback port nothing listens on.
func ClosedEndpoint(t testing.TB) string {
	t.Helper()
	return "http://" + freeAddr(t)
}
