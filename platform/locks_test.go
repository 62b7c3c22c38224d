package platform

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// lockString renders a parsed lock compactly for the tables:
// "[->]ID KIND MODE ACCESS PID DEV START-END root=R blocker=B depth=D".
func lockString(l Lock) string {
	arrow := ""
	if l.Waiter {
		arrow = "->"
	}
	end := "EOF"
	if l.End != LockEOF {
		end = fmt.Sprint(l.End)
	}
	dev := l.File().String()
	if l.NoInode {
		dev = "none"
	}
	return fmt.Sprintf("%s%d %s %s %s %d %s %d-%s r%d b%d d%d", arrow, l.ID, l.Kind, l.Mode, l.Access, l.PID, dev, l.Start, end, l.Root, l.Blocker, l.Depth)
}

func TestParseLocks(t *testing.T) {
	type want struct {
		skipped int
		locks   []string
	}
	tests := map[string]want{
		"mixed": {0, []string{
			"1 POSIX ADVISORY WRITE 7654 fe:00:10086680 0-EOF r0 b-1 d0",
			"->1 POSIX ADVISORY WRITE 7674 fe:00:10086680 0-EOF r0 b0 d1",
			"->1 OFD ADVISORY WRITE -1 fe:00:10086680 0-EOF r0 b1 d2",
			"->1 OFD ADVISORY WRITE -1 fe:00:10086680 0-EOF r0 b2 d3",
			"2 FLOCK ADVISORY WRITE 7619 fe:00:10086679 0-EOF r4 b-1 d0",
			"->2 FLOCK ADVISORY WRITE 7638 fe:00:10086679 0-EOF r4 b4 d1",
			"3 OFD ADVISORY WRITE -1 fe:00:10086681 0-EOF r6 b-1 d0",
			"->3 OFD ADVISORY WRITE -1 fe:00:10086681 0-EOF r6 b6 d1",
			"4 FLOCK ADVISORY READ 7651 fe:00:9977880 0-EOF r8 b-1 d0",
			"5 FLOCK ADVISORY READ 7609 fe:00:9977880 0-EOF r9 b-1 d0",
		}},
		"hand-empty":   {0, nil},
		"hand-garbage": {2, nil},
		"hand-waiter-first": {1, []string{
			"2 FLOCK ADVISORY WRITE 101 08:01:6 0-EOF r0 b-1 d0",
		}},
		"hand-id-mismatch": {1, []string{
			"1 POSIX ADVISORY WRITE 100 08:01:5 0-EOF r0 b-1 d0",
		}},
		"hand-deep": {0, []string{
			"7 POSIX ADVISORY WRITE 100 fd:1a:5 10-19 r0 b-1 d0",
			"->7 POSIX ADVISORY READ 101 fd:1a:5 12-15 r0 b0 d1",
			"->7 POSIX ADVISORY WRITE 102 fd:1a:5 0-EOF r0 b1 d2",
			"->7 OFD ADVISORY WRITE -1 fd:1a:5 0-99 r0 b2 d3",
			"->7 POSIX ADVISORY WRITE 103 fd:1a:5 5-EOF r0 b1 d2",
			"->7 FLOCK ADVISORY WRITE 104 fd:1a:5 0-EOF r0 b0 d1",
		}},
		"hand-depth-gap": {1, []string{
			"1 POSIX ADVISORY WRITE 100 08:01:5 0-EOF r0 b-1 d0",
		}},
		"hand-bad-dev": {4, []string{
			"5 FLOCK ADVISORY WRITE 100 08:01:5 0-EOF r0 b-1 d0",
		}},
		"hand-pids": {4, []string{
			"5 FLOCK ADVISORY WRITE 2147483647 08:01:5 0-EOF r0 b-1 d0",
		}},
		"hand-kinds": {0, []string{
			"1 POSIX *NOINODE* WRITE 100 none 0-EOF r0 b-1 d0",
			"2 LEASE ACTIVE READ 200 08:01:7 0-EOF r1 b-1 d0",
			"->2 LEASE BREAKER UNLCK 201 08:01:7 0-EOF r1 b1 d1",
			"3 DELEG BREAKING READ 300 08:01:8 0-EOF r3 b-1 d0",
			"4 UNKNOWN UNKNOWN WRITE 400 08:01:9 0-EOF r4 b-1 d0",
			"5 ACCESS ADVISORY READ 500 08:01:10 0-EOF r5 b-1 d0",
			"6 POSIX MANDATORY WRITE 600 08:01:11 0-EOF r6 b-1 d0",
		}},
		"hand-ranges": {5, []string{
			"2 POSIX ADVISORY WRITE 100 08:01:5 18446744073709551615-EOF r0 b-1 d0",
		}},
		"hand-whitespace": {2, []string{
			"3 POSIX ADVISORY WRITE 100 08:01:5 0-EOF r0 b-1 d0",
		}},
		// A held lock that cannot be read takes its whole queue with it;
		// a request that cannot be read takes the requests queued behind it.
		"hand-broken-trees": {5, []string{
			"1 POSIX ADVISORY WRITE 100 08:01:5 0-EOF r0 b-1 d0",
			"->1 POSIX ADVISORY WRITE 101 08:01:5 0-EOF r0 b0 d1",
			"3 POSIX ADVISORY WRITE 105 08:01:7 0-EOF r2 b-1 d0",
			"->3 POSIX ADVISORY WRITE 106 08:01:7 0-EOF r2 b2 d1",
			"->3 POSIX ADVISORY WRITE 109 08:01:7 0-EOF r2 b2 d1",
		}},
	}
	for _, name := range fixtures(t, "locks") {
		w, ok := tests[name]
		if !ok {
			t.Errorf("testdata/locks/%s has no expectation", name)
			continue
		}
		locks, skipped := ParseLocks(readFixture(t, filepath.Join("locks", name)), nil)
		var got []string
		for _, l := range locks {
			got = append(got, lockString(l))
		}
		if skipped != w.skipped || strings.Join(got, "\n") != strings.Join(w.locks, "\n") {
			t.Errorf("%s: skipped %d, locks:\n%s\nwant skipped %d, locks:\n%s", name, skipped, strings.Join(got, "\n"), w.skipped, strings.Join(w.locks, "\n"))
		}
	}
}

func TestParseLocksReusesBuffer(t *testing.T) {
	b := readFixture(t, filepath.Join("locks", "mixed"))
	dst := make([]Lock, 0, 64)
	got, _ := ParseLocks(b, dst)
	if len(got) != 10 || &got[0] != &dst[:1][0] {
		t.Errorf("ParseLocks did not parse into dst")
	}
	if allocs := testing.AllocsPerRun(100, func() { got, _ = ParseLocks(b, got) }); allocs > 0 {
		t.Errorf("ParseLocks allocates %.0f times per call into a big enough buffer, want 0", allocs)
	}
}

func TestParseSyscall(t *testing.T) {
	type want struct {
		ok   bool
		nr   int64
		arg0 uint64
		arg1 uint64
	}
	tests := map[string]want{
		"flock-wait":           {true, 73, 5, 2}, // flock(5, LOCK_EX)
		"fcntl-wait":           {true, 72, 5, 7}, // fcntl(5, F_SETLKW, ...)
		"cp-read":              {true, 0, 3, 0x7f9160013000},
		"hand-blocked-outside": {true, -1, 0, 0},
		"hand-running":         {},
		"hand-short":           {},
		"hand-no-0x":           {},
		"hand-long":            {},
		"hand-overflow":        {},
		"hand-garbage":         {},
		"hand-empty":           {},
	}
	for _, name := range fixtures(t, "syscall") {
		w, ok := tests[name]
		if !ok {
			t.Errorf("testdata/syscall/%s has no expectation", name)
			continue
		}
		sc, ok := ParseSyscall(readFixture(t, filepath.Join("syscall", name)))
		if ok != w.ok || ok && (sc.Nr != w.nr || sc.Args[0] != w.arg0 || sc.Args[1] != w.arg1) {
			t.Errorf("%s: %+v %v, want %+v", name, sc, ok, w)
		}
	}
}

func TestLockWaitChannel(t *testing.T) {
	for w, want := range map[string]bool{
		"locks_lock_inode_wait\n": true, "fcntl_setlk": true, "flock_lock_inode_wait": true,
		"posix_lock_inode_wait": true, "do_lock_file_wait": true, "__break_lease": true,
		"do_wait": false, "futex_do_wait": false, "0": false, "": false, "do_epoll_wait": false,
	} {
		if got := LockWaitChannel(w); got != want {
			t.Errorf("LockWaitChannel(%q) = %v, want %v", w, got, want)
		}
	}
}
