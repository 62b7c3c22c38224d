//go:build linux

package enforce_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary a helper process that sleeps forever:
// a harmless target that the test owns.
const helperEnv = "GUARDD_ENFORCE_TEST_HELPER"

func init() {
	mode := os.Getenv(helperEnv)
	switch mode {
	case "sleep", "ignore-term", "zombies":
	default:
		return
	}
	// The safety net first: a helper runs as a throwaway user, and
	// RLIMIT_NPROC caps what that user can start.
	lim := unix.Rlimit{Cur: 64, Max: 64}
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "helper: setrlimit:", err)
		os.Exit(3)
	}
	switch mode {
	case "ignore-term": // a process that outlives SIGTERM, for the SIGKILL that follows
		signal.Ignore(syscall.SIGTERM)
	case "zombies": // a parent that never reaps its children
		for range 3 {
			pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
			if err != nil {
				fmt.Fprintln(os.Stderr, "helper: fork:", err)
				os.Exit(3)
			}
			for {
				b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
				if err != nil || strings.Contains(string(b), ") Z ") {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	fmt.Printf("ready %d\n", os.Getpid())
	for {
		time.Sleep(time.Hour)
	}
}

// TestKillNeverHitsReusedPID: an action whose target exited, and whose pid
// now names another process of the same user, is skipped.
func TestKillNeverHitsReusedPID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs its targets as a throwaway user and sets ns_last_pid")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	bin := helperBinary(t)

	old := startHelper(t, u, bin)
	staleID := procID(t, old.pid)
	old.cmd.Process.Kill()
	<-old.done // reaped: its pid is free

	var fresh *helper
	for try := 0; try < 50 && fresh == nil; try++ {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(int(staleID.PID)-1)), 0); err != nil {
			t.Fatal(err)
		}
		h := startHelper(t, u, bin)
		if h.pid == int(staleID.PID) {
			fresh = h
		} else {
			h.cmd.Process.Kill()
			<-h.done
		}
	}
	if fresh == nil {
		t.Skipf("could not get pid %d again: the host forks too much", staleID.PID)
	}
	freshID := procID(t, fresh.pid)
	if freshID.StartTime == staleID.StartTime {
		t.Skipf("the new process on pid %d started in the same clock tick as the old one", staleID.PID)
	}

	e := enforce.New(1000, nil, nil)
	res := e.Do(enforce.Action{Kind: enforce.ActKill, Target: staleID, Signal: "KILL"})
	if res.Outcome != enforce.Skipped {
		t.Errorf("kill of the stale %v: outcome %q (%s), want skipped", staleID, res.Outcome, res.Reason)
	}
	// kill(2) marks SIGKILL pending before it returns, so one sent by Do
	// shows now: pending, or the process already dead.
	if p, err := platform.ReadProcess(freshID.PID, nil); err != nil || p.StartTime != freshID.StartTime || p.State == 'Z' || fresh.exited() {
		t.Fatalf("the process now on pid %d died (%v)", freshID.PID, err)
	}
	if killPending(fresh.pid) {
		t.Fatalf("the process now on pid %d has a SIGKILL pending", fresh.pid)
	}

	// Control: the same action on the right identity does kill it, so the
	// skip above was the identity check and not, say, the uid floor.
	res = e.Do(enforce.Action{Kind: enforce.ActKill, Target: freshID, Signal: "KILL"})
	if res.Outcome != enforce.Done {
		t.Fatalf("kill of %v: outcome %q (%s), want done", freshID, res.Outcome, res.Reason)
	}
	select {
	case <-fresh.done:
		if ws := fresh.cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGKILL {
			t.Errorf("control ended with %v, want SIGKILL", fresh.cmd.ProcessState)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("control still alive 30s after a done kill")
	}
}

// killPending reports whether SIGKILL is pending for the process (its
// main thread or its thread group).
func killPending(pid int) bool { return sigPending(pid, unix.SIGKILL) }

// sigPending reports whether sig is pending for the process.
func sigPending(pid int, sig unix.Signal) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		if k == "SigPnd" || k == "ShdPnd" {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && m&(1<<(sig-1)) != 0 {
				return true
			}
		}
	}
	return false
}

func procID(t testing.TB, pid int) platform.ProcID {
	t.Helper()
	p, err := platform.ReadProcess(int32(pid), nil)
	if err != nil {
		t.Fatalf("read %d: %v", pid, err)
	}
	return p.ProcID
}

type helper struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed when reaped
}

func (h *helper) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// startHelper runs the test binary as a sleeping helper owned by u and
// waits until it is ready; it is killed when the test ends.
func startHelper(t testing.TB, u *testUser, bin string) *helper {
	t.Helper()
	return startHelperMode(t, u, bin, "sleep")
}

// startHelperMode is startHelper for a helper that sleeps as mode says:
// "sleep", "ignore-term" (SIGTERM ignored) or "zombies" (three zombie
// children it never reaps).
func startHelperMode(t testing.TB, u *testUser, bin, mode string) *helper {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = "/"
	cmd.Env = []string{helperEnv + "=" + mode}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatal(err)
	}
	pw.Close()
	h := &helper{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-h.done
	})
	ready := make(chan string, 1)
	go func() {
		defer pr.Close()
		line, _ := bufio.NewReader(pr).ReadString('\n')
		ready <- strings.TrimSpace(line)
		io.Copy(io.Discard, pr)
	}()
	select {
	case line := <-ready:
		if line != "ready "+strconv.Itoa(h.pid) {
			t.Fatalf("helper said %q", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper not ready after 30s")
	}
	return h
}

// helperBinary copies the test binary where the test user can run it.
func helperBinary(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/tmp", "guardd-enforce-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// holdUsersLock takes the lock the end-to-end tests (../tests) use: held
// shared while gdt-* users exist, so that no other test binary removes
// them as leftovers of a crashed run.
func holdUsersLock(t testing.TB) {
	f, err := os.OpenFile("/tmp/guardd-gdt-users.lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // runs after the user's cleanup
}

type testUser struct {
	name     string
	uid, gid uint32
}

// newTestUser creates a throwaway gdt-* user; when the test ends every
// process of it is killed and it is deleted.
func newTestUser(t testing.TB) *testUser {
	t.Helper()
	var rnd [3]byte
	f, _ := os.Open("/dev/urandom")
	io.ReadFull(f, rnd[:])
	f.Close()
	name := fmt.Sprintf("gdt-enforce-%x", rnd)
	if out, err := exec.Command("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := removeTestUser(name); err != nil {
			t.Error(err)
		}
	})
	pu, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(pu.Uid, 10, 32)
	gid, _ := strconv.ParseUint(pu.Gid, 10, 32)
	if uid < 1000 {
		t.Fatalf("%s got uid %d", name, uid)
	}
	return &testUser{name: name, uid: uint32(uid), gid: uint32(gid)}
}

func removeTestUser(name string) error {
	pu, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid64, err := strconv.ParseUint(pu.Uid, 10, 32)
	if err != nil || uid64 < 1000 || !strings.HasPrefix(name, "gdt-") {
		return fmt.Errorf("refusing to remove %s (uid %s)", name, pu.Uid)
	}
	uid := uint32(uid64)
	end := time.Now().Add(30 * time.Second)
	for {
		pids := pidsOf(uid)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			// pidfd first, uid re-checked after: a reused pid is never hit.
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue
			}
			if u, ok := realUID(pid); ok && u == uid {
				unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			}
			unix.Close(fd)
		}
		if time.Now().After(end) {
			return fmt.Errorf("processes of %s still alive: %v", name, pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var out []byte
	for try := 0; try < 20; try++ { // the passwd lock may be taken
		if out, err = exec.Command("userdel", name).CombinedOutput(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("userdel %s: %v: %s", name, err, out)
}

func pidsOf(uid uint32) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if u, ok := realUID(pid); ok && u == uid {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func realUID(pid int) (uint32, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				u, err := strconv.ParseUint(f[0], 10, 32)
				return uint32(u), err == nil
			}
		}
	}
	return 0, false
}
