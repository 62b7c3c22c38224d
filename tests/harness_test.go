//go:build linux

package tests

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Deadlines are generous: the tests prove that things happen, on a loaded
// two-core machine with a race-enabled daemon; latency belongs in benchmarks.
const (
	Deadline      = 30 * time.Second // for an outcome to show up
	StopDeadline  = 20 * time.Second // for guardd to exit after SIGTERM
	CleanDeadline = 30 * time.Second // for a test user's processes to vanish
)

// Built once by TestMain.
var (
	binDir      string // mode 0755 under /tmp: the test users run offenders from here
	guarddBin   string
	offenderBin string
)

// usersLock is held shared by every test binary that owns gdt-* users while
// it runs (this package, ../enforce), and exclusively for the moment the
// leftovers of crashed runs are removed: a gdt-* user is only a leftover
// when no test binary holds the lock.
const usersLock = "/tmp/guardd-gdt-users.lock"

// parallel is the default -test.parallel: the tests spend their time
// waiting for guardd's ticks, not burning the test's CPU (burners run at
// BurnerNice), so more than GOMAXPROCS of them run well together: the
// suite takes half the time, also on a loaded host.
const parallel = "8"

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", parallel)
	}
	if os.Geteuid() != 0 {
		fmt.Println("tests/: end-to-end tests need root; skipped")
		os.Exit(0)
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	lock, err := os.OpenFile(usersLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer lock.Close()
	if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		if err := removeLeftoverUsers(); err != nil {
			fmt.Fprintln(os.Stderr, "tests: removing leftover test users:", err)
			return 1
		}
	} else {
		fmt.Fprintln(os.Stderr, "tests: another test binary owns gdt-* users now; leftovers are not removed")
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_SH); err != nil {
		fmt.Fprintln(os.Stderr, "tests: lock:", err)
		return 1
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	if binDir, err = os.MkdirTemp("/tmp", "guardd-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	if err := os.Chmod(binDir, 0o755); err != nil { // the test users exec offenders from here
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	guarddBin = filepath.Join(binDir, "guardd")
	offenderBin = filepath.Join(binDir, "offender")
	// In the test VM, the binaries the host built (vm_test.go).
	if ok, err := vmPrebuilt(); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "tests:", err)
			return 1
		}
		return m.Run()
	}
	var raceFlag []string
	if raceEnabled {
		raceFlag = []string{"-race"} // catch the daemon's races too: it exits 66 on one
	}
	if err := goBuild(guarddBin, "../guardd", raceFlag...); err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	// The offenders are static (no cgo): a dynamically linked reaper would
	// itself load an LD_PRELOAD meant for the program it starts (net/http
	// in the offender made it dynamic once, and the preload test's burner
	// library then ran inside the root reaper).
	if err := goBuildEnv(offenderBin, "./offender", []string{"CGO_ENABLED=0"}); err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	return m.Run()
}

func goBuild(out, pkg string, flags ...string) error {
	return goBuildEnv(out, pkg, nil, flags...)
}

// goBuildEnv is goBuild with extra environment for the go command.
func goBuildEnv(out, pkg string, env []string, flags ...string) error {
	// `go test` puts its own GOROOT/bin first in PATH (Go 1.19+).
	goTool := "go"
	args := append([]string{"build", "-o", out}, flags...)
	args = append(args, pkg)
	cmd := exec.Command(goTool, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return os.Chmod(out, 0o755)
}

// ExecDir returns a fresh directory the test users can read and execute
// from (t.TempDir is root's alone), removed after the test.
func ExecDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp(binDir, "t-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// CopyFile copies src to dst with mode perm.
func CopyFile(t testing.TB, src, dst string, perm os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// readLines calls each for every line of r until EOF, in a goroutine; the
// returned channel is closed when r is exhausted.
func readLines(r io.ReadCloser, each func(string)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			each(sc.Text())
		}
	}()
	return done
}

// Eventually polls cond every 50 ms until it returns true or the deadline
// passes; it reports whether cond came true.
func Eventually(deadline time.Duration, cond func() bool) bool {
	end := time.Now().Add(deadline)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
