//go:build linux

package platform

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeProcs builds a snapshot of processes (pid → uid), all sleeping,
// started at start.
func fakeProcs(start time.Time, pids map[int32]uint32) *Snapshot {
	snap := &Snapshot{Users: map[uint32]*UserStats{}}
	for pid, uid := range pids {
		snap.Procs = append(snap.Procs, &Process{ProcID: ProcID{PID: pid, StartTime: uint64(pid) * 7}, UID: uid, State: 'S', Threads: 1, Started: start})
		if snap.Users[uid] == nil {
			snap.Users[uid] = &UserStats{UID: uid}
		}
	}
	return snap
}

func procByPID(snap *Snapshot, pid int32) *Process {
	for _, p := range snap.Procs {
		if p.PID == pid {
			return p
		}
	}
	return nil
}

// lockObserverAt returns an observer of a /proc/locks the test writes,
// with a fake /proc.
func lockObserverAt(t *testing.T) (*LockObserver, func(text string)) {
	dir := t.TempDir()
	o := NewLockObserver()
	o.Path = filepath.Join(dir, "locks")
	o.ProcDir = filepath.Join(dir, "proc")
	write := func(text string) {
		if err := os.WriteFile(o.Path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return o, write
}

func TestLockObserverWaits(t *testing.T) {
	o, write := lockObserverAt(t)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	procs := map[int32]uint32{100: 1001, 101: 1002, 102: 1002, 103: 1003, 104: 1002}
	observe := func(at time.Duration, text string) *Snapshot {
		t.Helper()
		write(text)
		snap := fakeProcs(t0.Add(-time.Hour), procs)
		snap.Time = t0.Add(at)
		if err := o.Observe(snap); err != nil {
			t.Fatal(err)
		}
		return snap
	}
	deep := string(readFixture(t, filepath.Join("locks", "hand-deep")))

	snap := observe(0, deep)
	if w := procByPID(snap, 101).LockWait; w != 0 {
		t.Errorf("first sight: wait %s, want 0", w)
	}
	snap = observe(5*time.Second, deep)
	h := procByPID(snap, 100)
	// 101..104 wait in the holder's tree (the OFD request has no pid and
	// no task to match here).
	if h.LocksHeld != 1 || h.LockBlocking != 4 || h.LockBlockingFor != 5*time.Second || h.LockWait != 0 {
		t.Errorf("holder: held %d blocking %d for %s wait %s, want 1, 4, 5s, 0", h.LocksHeld, h.LockBlocking, h.LockBlockingFor, h.LockWait)
	}
	for _, pid := range []int32{101, 102, 103, 104} {
		if p := procByPID(snap, pid); p.LockWait != 5*time.Second || p.LocksHeld != 0 || p.LockBlocking != 0 {
			t.Errorf("waiter %d: wait %s held %d blocking %d, want 5s 0 0", pid, p.LockWait, p.LocksHeld, p.LockBlocking)
		}
	}
	if u := snap.Users[1002]; u.LockWaiters != 3 {
		t.Errorf("user 1002: %d waiters, want 3", u.LockWaiters)
	}
	if u := snap.Users[1001]; u.LockWaiters != 0 {
		t.Errorf("user 1001 (the holder): %d waiters, want 0", u.LockWaiters)
	}
	facts := o.Facts()
	if len(facts) != 6 || facts[1].Holder == nil || facts[1].Holder.PID != 100 || facts[3].Proc != nil || facts[1].Wait != 5*time.Second {
		t.Errorf("facts %+v", facts)
	}

	// 101's request goes away (granted or interrupted) and comes back: a
	// new wait. 102 keeps waiting.
	observe(6*time.Second, strings.ReplaceAll(deep, "READ 101", "READ 199"))
	snap = observe(7*time.Second, deep)
	if w := procByPID(snap, 101).LockWait; w != 0 {
		t.Errorf("101 waits again: %s, want 0 (a new wait)", w)
	}
	if w := procByPID(snap, 102).LockWait; w != 7*time.Second {
		t.Errorf("102: %s, want 7s", w)
	}

	// Nothing locked: every field back to 0.
	snap = observe(8*time.Second, "")
	for _, p := range snap.Procs {
		if p.LocksHeld != 0 || p.LockWait != 0 || p.LockBlocking != 0 || p.LockBlockingFor != 0 {
			t.Errorf("%d: lock fields left over: %+v", p.PID, p)
		}
	}
	if len(o.waits) != 0 || len(o.held) != 0 {
		t.Errorf("state kept for locks gone: %d waits, %d held", len(o.waits), len(o.held))
	}
}

func TestLockObserverReusedPID(t *testing.T) {
	o, write := lockObserverAt(t)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	write("1: POSIX  ADVISORY  WRITE 100 08:01:5 0 EOF\n1: -> POSIX  ADVISORY  WRITE 101 08:01:5 0 EOF\n")
	snap := fakeProcs(t0.Add(-time.Hour), map[int32]uint32{100: 1001, 101: 1001})
	snap.Time = t0
	o.Observe(snap)
	if procByPID(snap, 100).LocksHeld != 1 {
		t.Fatal("the holder is not credited")
	}
	// The holder's pid now names a process that started after the lock
	// was first seen: not the holder.
	snap = fakeProcs(t0.Add(-time.Hour), map[int32]uint32{100: 1001, 101: 1001})
	procByPID(snap, 100).Started = t0.Add(3 * time.Second)
	snap.Time = t0.Add(10 * time.Second)
	o.Observe(snap)
	if p := procByPID(snap, 100); p.LocksHeld != 0 || p.LockBlocking != 0 {
		t.Errorf("a reused pid is credited with the lock: %+v", p)
	}
	if w := procByPID(snap, 101).LockWait; w != 10*time.Second {
		t.Errorf("the waiter still waits: %s, want 10s", w)
	}
}

// TestLockObserverFlockHolder: an FLOCK lock is credited to the process
// named only if one of its descriptors shows it (a child may hold it, the
// pid may be stale).
func TestLockObserverFlockHolder(t *testing.T) {
	o, write := lockObserverAt(t)
	t0 := time.Now()
	line := "1: FLOCK  ADVISORY  WRITE 100 08:01:5 0 EOF\n"
	write(line + "1: -> FLOCK  ADVISORY  WRITE 101 08:01:5 0 EOF\n")
	fdinfo := filepath.Join(o.ProcDir, "100", "fdinfo")
	if err := os.MkdirAll(fdinfo, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(fdinfo, "3"), []byte("pos:\t0\nflags:\t02\nmnt_id:\t26\nino:\t5\n"), 0o644)
	snap := fakeProcs(t0, map[int32]uint32{100: 1001, 101: 1001})
	snap.Time = t0
	o.Observe(snap)
	if p := procByPID(snap, 100); p.LocksHeld != 0 || p.LockBlocking != 0 {
		t.Errorf("credited without the lock in its fdinfo: %+v", p)
	}
	os.WriteFile(filepath.Join(fdinfo, "4"), []byte("pos:\t0\nflags:\t02\nmnt_id:\t26\nino:\t5\nlock:\t"+line), 0o644)
	o2, write2 := lockObserverAt(t)
	o2.ProcDir = o.ProcDir
	write2(line + "1: -> FLOCK  ADVISORY  WRITE 101 08:01:5 0 EOF\n")
	snap = fakeProcs(t0, map[int32]uint32{100: 1001, 101: 1001})
	snap.Time = t0
	o2.Observe(snap)
	if p := procByPID(snap, 100); p.LocksHeld != 1 || p.LockBlocking != 1 {
		t.Errorf("not credited with the lock its fdinfo shows: %+v", p)
	}
}

// TestLockObserverAnonymous: OFD requests (pid -1) are matched to the
// tasks asleep in a lock wait whose syscall names a descriptor on the
// file.
func TestLockObserverAnonymous(t *testing.T) {
	o, write := lockObserverAt(t)
	file := filepath.Join(t.TempDir(), "locked")
	os.WriteFile(file, nil, 0o644)
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	dev := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	write("1: OFDLCK ADVISORY  WRITE -1 " + dev + " 0 EOF\n1: -> OFDLCK ADVISORY  WRITE -1 " + dev + " 0 EOF\n")
	fake := func(pid int, wchan, syscall string) {
		d := filepath.Join(o.ProcDir, strconv.Itoa(pid))
		os.MkdirAll(filepath.Join(d, "fd"), 0o755)
		os.WriteFile(filepath.Join(d, "wchan"), []byte(wchan), 0o644)
		os.WriteFile(filepath.Join(d, "syscall"), []byte(syscall), 0o644)
		os.Symlink(file, filepath.Join(d, "fd", "5"))
	}
	fake(200, "fcntl_setlk", "72 0x5 0x26 0x7ffc 0x0 0x0 0x0 0x7ffb 0x4000") // F_OFD_SETLKW on fd 5
	fake(201, "do_epoll_wait", "232 0x5 0x0 0x0 0x0 0x0 0x0 0x7ffb 0x4000")
	fake(202, "fcntl_setlk", "72 0x5 0x6 0x7ffc 0x0 0x0 0x0 0x7ffb 0x4000") // F_SETLK: does not wait
	snap := fakeProcs(time.Now(), map[int32]uint32{200: 1001, 201: 1001, 202: 1001})
	snap.Time = time.Now()
	o.Observe(snap)
	if p := procByPID(snap, 200); p.LockWait != 0 || snap.Users[1001].LockWaiters != 1 {
		t.Errorf("the anonymous waiter is not 200: %+v, %d waiters", p, snap.Users[1001].LockWaiters)
	}
	snap.Time = snap.Time.Add(2 * time.Second)
	o.Observe(snap)
	if p := procByPID(snap, 200); p.LockWait != 2*time.Second {
		t.Errorf("200 waits %s, want 2s", p.LockWait)
	}
	for _, pid := range []int32{201, 202} {
		if p := procByPID(snap, pid); p.LockWait != 0 {
			t.Errorf("%d is taken for a waiter", pid)
		}
	}
}

// TestLockObserverAnonymousYoung: an anonymous waiter sampled while still
// running (so the full scan passes it over) is named on the next tick,
// without waiting for the next full scan.
func TestLockObserverAnonymousYoung(t *testing.T) {
	o, write := lockObserverAt(t)
	o.AnonScanEvery = time.Hour
	file := filepath.Join(t.TempDir(), "locked")
	os.WriteFile(file, nil, 0o644)
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	dev := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	write("1: OFDLCK ADVISORY  WRITE -1 " + dev + " 0 EOF\n1: -> OFDLCK ADVISORY  WRITE -1 " + dev + " 0 EOF\n")
	d := filepath.Join(o.ProcDir, "300")
	os.MkdirAll(filepath.Join(d, "fd"), 0o755)
	os.WriteFile(filepath.Join(d, "wchan"), []byte("fcntl_setlk"), 0o644)
	os.WriteFile(filepath.Join(d, "syscall"), []byte("72 0x5 0x26 0x7ffc 0x0 0x0 0x0 0x7ffb 0x4000"), 0o644)
	os.Symlink(file, filepath.Join(d, "fd", "5"))

	t0 := time.Now()
	snap := fakeProcs(t0, map[int32]uint32{300: 1001})
	snap.Time = t0
	procByPID(snap, 300).State = 'R' // sampled before it blocked
	o.Observe(snap)
	if n := snap.Users[1001].LockWaiters; n != 0 {
		t.Fatalf("a running process was named a waiter (%d)", n)
	}
	snap = fakeProcs(t0, map[int32]uint32{300: 1001})
	snap.Time = t0.Add(time.Second)
	o.Observe(snap)
	if n := snap.Users[1001].LockWaiters; n != 1 {
		t.Errorf("the young waiter is not named on the next tick (%d waiters)", n)
	}
}

// TestLockObserverLive takes real locks: a flock(1) holder and a waiter
// (util-linux flock, run as root; skipped without it).
func TestLockObserverLive(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("no flock(1)")
	}
	file := filepath.Join(t.TempDir(), "live.lock")
	holder := exec.Command(flock, file, "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	waitFor := func(cond func() bool) bool {
		for range 100 {
			if cond() {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	if !waitFor(func() bool {
		b, _ := os.ReadFile("/proc/locks")
		return strings.Contains(string(b), " "+strconv.Itoa(holder.Process.Pid)+" ")
	}) {
		t.Fatal("the holder took no lock")
	}
	waiter := exec.Command(flock, file, "true")
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { waiter.Process.Kill(); waiter.Wait() }()
	s, err := NewSampler(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := NewLockObserver()
	var hp, wp *Process
	if !waitFor(func() bool {
		snap, err := s.Sample()
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Observe(snap); err != nil {
			t.Fatal(err)
		}
		hp, wp = procByPID(snap, int32(holder.Process.Pid)), procByPID(snap, int32(waiter.Process.Pid))
		return hp != nil && wp != nil && hp.LockBlocking == 1
	}) {
		t.Fatalf("holder %+v waiter %+v", hp, wp)
	}
	if hp.LocksHeld != 1 {
		t.Errorf("holder holds %d locks, want 1", hp.LocksHeld)
	}
	for _, f := range o.Facts() {
		if f.Proc == nil || f.Proc.PID != int32(waiter.Process.Pid) {
			continue
		}
		p, err := LockPath(f.Proc.PID, f.File())
		if err != nil || p != file {
			t.Errorf("LockPath = %q, %v; want %s", p, err, file)
		}
	}
	if _, err := LockPath(int32(os.Getpid()), DevIno{1, 2, 3}); err != ErrNoPath {
		t.Errorf("LockPath of a file not open: %v, want ErrNoPath", err)
	}
}
