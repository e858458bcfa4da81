package s3test_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/amichain/amichain/internal/s3test"
)

// TestHelperHoldVersitygw is not a test: the test below runs this binary again with it, as
// the test binary that dies.
func TestHelperHoldVersitygw(t *testing.T) {
	pidFile := os.Getenv("S3TEST_PID_FILE")
	if pidFile == "" {
		t.Skip("helper for TestVersitygwDiesWithTheTestBinary")
	}
	srv := s3test.StartVersitygw(t)
	assert.NilError(t, os.WriteFile(pidFile, []byte(strconv.Itoa(srv.PID)), 0o644))
	time.Sleep(time.Minute) // killed before this ends
}

func TestVersitygwDiesWithTheTestBinary(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldVersitygw$", "-test.v")
	cmd.Env = append(os.Environ(), "S3TEST_PID_FILE="+pidFile)
	assert.NilError(t, cmd.Start())
	var pid int
	for deadline := time.Now().Add(30 * time.Second); pid == 0; time.Sleep(20 * time.Millisecond) {
		if data, err := os.ReadFile(pidFile); err == nil && len(data) > 0 {
			pid, _ = strconv.Atoi(string(data))
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Skip("the helper did not start versitygw (not installed?)")
		}
	}
	assert.NilError(t, cmd.Process.Kill()) // SIGKILL: no cleanup runs
	_ = cmd.Wait()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return // gone
		}
		if zombie(pid) {
			return // dead, waiting for init to reap it
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("versitygw (pid %d) outlived the killed test binary by 10s", pid)
		}
	}
}

func zombie(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) STATE ...
	for i := len(data) - 1; i >= 0; i-- {
		if data[i] == ')' && i+2 < len(data) {
			return data[i+2] == 'Z'
		}
	}
	return false
}
