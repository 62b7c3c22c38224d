//go:build linux

package platform

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLockObserverOthersAndForeign: a holder is charged with the waiters
// of other uids it blocks, and with the locks it holds on files another
// uid owns while someone waits (the owner read through a descriptor of
// the holder, or of a waiter when the holder shows none). A holder that
// blocks only its own processes on its own file (the control) gets
// neither.
func TestLockObserverOthersAndForeign(t *testing.T) {
	o, write := lockObserverAt(t)
	files := t.TempDir()
	owner := uint32(os.Getuid())
	other := owner + 1000
	lockLine := func(path string) string {
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	}
	openIn := func(pid int, fd int, path string) {
		dir := filepath.Join(o.ProcDir, fmt.Sprint(pid), "fd")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(path, filepath.Join(dir, fmt.Sprint(fd))); err != nil {
			t.Fatal(err)
		}
	}
	victim, mine, viaWaiter := filepath.Join(files, "victim.lock"), filepath.Join(files, "mine.lock"), filepath.Join(files, "w.lock")
	dv, dm, dw := lockLine(victim), lockLine(mine), lockLine(viaWaiter)
	openIn(200, 3, victim) // the attacker, uid other, holds the owner's file
	openIn(201, 4, victim)
	openIn(300, 3, mine) // the owner holds its own file
	openIn(301, 3, mine)
	openIn(401, 5, viaWaiter) // holder 400 shows no descriptor: found through the waiter
	text := strings.Join([]string{
		"1: POSIX  ADVISORY  WRITE 200 " + dv + " 0 EOF",
		"1: -> POSIX  ADVISORY  WRITE 201 " + dv + " 0 EOF",
		"2: POSIX  ADVISORY  WRITE 300 " + dm + " 0 EOF",
		"2: -> POSIX  ADVISORY  WRITE 301 " + dm + " 0 EOF",
		"2: -> POSIX  ADVISORY  WRITE 302 " + dm + " 0 EOF",
		"3: POSIX  ADVISORY  WRITE 400 " + dw + " 0 EOF",
		"3: -> POSIX  ADVISORY  WRITE 401 " + dw + " 0 EOF",
		"4: POSIX  ADVISORY  WRITE 500 " + dv + " 0 9", // no waiter: no lookup, no charge
		"",
	}, "\n")
	write(text)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	procs := map[int32]uint32{200: other, 201: owner, 300: owner, 301: owner, 302: other, 400: other, 401: owner, 500: other}
	var snap *Snapshot
	for _, at := range []time.Duration{0, 7 * time.Second} {
		snap = fakeProcs(t0.Add(-time.Hour), procs)
		snap.Time = t0.Add(at)
		if err := o.Observe(snap); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		pid                    int32
		blocking, others, frgn int32
		othersFor, foreignFor  time.Duration
	}{
		{200, 1, 1, 1, 7 * time.Second, 7 * time.Second}, // the attack
		{300, 2, 1, 0, 7 * time.Second, 0},               // own file: one waiter of another uid, no foreign lock
		{400, 1, 1, 1, 7 * time.Second, 7 * time.Second},
		{500, 0, 0, 0, 0, 0},
	} {
		p := procByPID(snap, tc.pid)
		if p.LockBlocking != tc.blocking || p.LockBlockingOthers != tc.others || p.LockForeign != tc.frgn ||
			p.LockBlockingOthersFor != tc.othersFor || p.LockForeignFor != tc.foreignFor {
			t.Errorf("holder %d: blocking %d, others %d for %s, foreign %d for %s; want %d, %d for %s, %d for %s", tc.pid,
				p.LockBlocking, p.LockBlockingOthers, p.LockBlockingOthersFor, p.LockForeign, p.LockForeignFor,
				tc.blocking, tc.others, tc.othersFor, tc.frgn, tc.foreignFor)
		}
	}
	for _, f := range o.Facts() {
		if !f.Waiter && f.PID == 200 && (!f.FileUIDKnown || f.FileUID != owner) {
			t.Errorf("fact of the attacker's lock: file uid %d known %v, want %d", f.FileUID, f.FileUIDKnown, owner)
		}
	}

	// The control, alone: a holder and a waiter of one uid on its file.
	procs = map[int32]uint32{300: owner, 301: owner}
	write("2: POSIX  ADVISORY  WRITE 300 " + dm + " 0 EOF\n2: -> POSIX  ADVISORY  WRITE 301 " + dm + " 0 EOF\n")
	snap = fakeProcs(t0.Add(-time.Hour), procs)
	snap.Time = t0.Add(9 * time.Second)
	if err := o.Observe(snap); err != nil {
		t.Fatal(err)
	}
	if p := procByPID(snap, 300); p.LockBlocking != 1 || p.LockBlockingOthers != 0 || p.LockForeign != 0 {
		t.Errorf("own lock, own waiter: blocking %d others %d foreign %d, want 1 0 0", p.LockBlocking, p.LockBlockingOthers, p.LockForeign)
	}
}
