package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// StartVersitygw runs the versitygw binary with a posix backend in a temporary directory until
// the test ends. Without the binary the test is skipped, or fails when AMICHAIN_REQUIRE_TOOLS=1.
func StartVersitygw(t testing.TB) *Server {
	t.Helper()
	bin := findTool(t, "versitygw")
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

	var out lockedBuffer
	cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", addr,
		"posix", "--versioning-dir", versions, data)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
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

// findTool looks in the repository's .tools/bin first, then PATH.
func findTool(t testing.TB, name string) string {
	t.Helper()
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, ".tools", "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found in .tools/bin or PATH: run .ci/install-tools", name)
	if os.Getenv("AMICHAIN_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg + " (AMICHAIN_REQUIRE_TOOLS=1 makes this a failure)")
	}
	t.Skip(msg)
	return ""
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
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

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
