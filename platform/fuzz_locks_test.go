package platform

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets of the lock, syscall, mountinfo and inotify parsers. Seeded
// from the fixtures; the first property is that they never panic.

func FuzzParseLocks(f *testing.F) {
	addFixtures(f, "locks", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		locks, skipped := ParseLocks(b, nil)
		lines := 0
		for l := range strings.Lines(string(b)) {
			if strings.TrimSpace(l) != "" {
				lines++
			}
		}
		if len(locks)+skipped != lines {
			t.Fatalf("%d locks + %d skipped != %d non-empty lines", len(locks), skipped, lines)
		}
		for i, l := range locks {
			// The tree structure is consistent: a held lock is its own
			// root; a request hangs from an earlier line of its tree, one
			// level up, with the same ID.
			switch {
			case !l.Waiter && (l.Root != i || l.Blocker != -1 || l.Depth != 0):
				t.Fatalf("held lock %d: %+v", i, l)
			case l.Waiter && (l.Root >= i || l.Blocker >= i || l.Blocker < l.Root || locks[l.Root].Waiter ||
				locks[l.Blocker].Depth != l.Depth-1 || locks[l.Root].ID != l.ID):
				t.Fatalf("request %d: %+v", i, l)
			case l.PID == 0 || l.PID < -1:
				t.Fatalf("pid %d", l.PID)
			case l.End < l.Start:
				t.Fatalf("range %d-%d", l.Start, l.End)
			}
		}
		// Parsing the parsed lines again as the kernel would print them
		// gives the same locks.
		var out bytes.Buffer
		for _, l := range locks {
			out.WriteString(formatLock(l))
		}
		again, skipped := ParseLocks(out.Bytes(), nil)
		if skipped != 0 || len(again) != len(locks) {
			t.Fatalf("re-parse of\n%s: %d locks, %d skipped; want %d", out.String(), len(again), skipped, len(locks))
		}
		for i := range again {
			if again[i] != locks[i] {
				t.Fatalf("round trip: %+v, then %+v", locks[i], again[i])
			}
		}
	})
}

// formatLock prints a lock the way fs/locks.c lock_get_status does.
func formatLock(l Lock) string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(l.ID, 10) + ": ")
	if l.Waiter {
		b.WriteString(strings.Repeat(" ", l.Depth-1) + "-> ")
	}
	kind := map[LockKind]string{LockPOSIX: "POSIX ", LockOFD: "OFDLCK", LockFlock: "FLOCK ", LockLease: "LEASE ",
		LockDeleg: "DELEG ", LockAccess: "ACCESS", LockUnknown: "UNKNOWN"}[l.Kind]
	b.WriteString(kind + " " + l.Mode + " " + l.Access + " " + strconv.FormatInt(int64(l.PID), 10) + " ")
	if l.NoInode {
		b.WriteString("<none>:0 ")
	} else {
		b.WriteString(l.File().String() + " ")
	}
	b.WriteString(strconv.FormatUint(l.Start, 10) + " ")
	if l.End == LockEOF {
		b.WriteString("EOF\n")
	} else {
		b.WriteString(strconv.FormatUint(l.End, 10) + "\n")
	}
	return b.String()
}

func FuzzParseSyscall(f *testing.F) {
	addFixtures(f, "syscall", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, ok := ParseSyscall(b)
		if ok && sc.Nr < -1 {
			t.Fatalf("nr %d", sc.Nr)
		}
		if !ok && sc != (Syscall{}) {
			t.Fatalf("not ok but %+v", sc)
		}
	})
}

func FuzzParseMountInfo(f *testing.F) {
	addFixtures(f, "mountinfo", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, skipped := ParseMountInfo(b)
		lines := 0
		for l := range strings.Lines(string(b)) {
			if len(bytes.TrimSpace([]byte(l))) != 0 {
				lines++
			}
		}
		if len(ms)+skipped != lines {
			t.Fatalf("%d mounts + %d skipped != %d lines", len(ms), skipped, lines)
		}
		for _, m := range ms {
			if !strings.HasPrefix(m.Point, "/") || m.Type == "" {
				t.Fatalf("mount %+v", m)
			}
		}
		LocalMounts(ms) // never panics
	})
}

func FuzzParseInotify(f *testing.F) {
	ev := func(wd int32, mask uint32, name string, pad int) []byte {
		b := make([]byte, 16+len(name)+pad)
		binary.NativeEndian.PutUint32(b[0:], uint32(wd))
		binary.NativeEndian.PutUint32(b[4:], mask)
		binary.NativeEndian.PutUint32(b[12:], uint32(len(name)+pad))
		copy(b[16:], name)
		return b
	}
	f.Add(append(ev(1, InCreate, "f1", 2), ev(2, InDelete|InIsDir, "dir", 5)...))
	f.Add(ev(-1, InQOverflow, "", 0))
	f.Add([]byte{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := ParseInotify(b, func(wd int32, mask uint32, name []byte) {
			if bytes.IndexByte(name, 0) >= 0 {
				t.Fatalf("name with NUL %q", name)
			}
			n++
		})
		if err == nil && len(b) > 0 && n == 0 {
			t.Fatal("no event from a buffer that parsed")
		}
	})
}

func TestParseInotify(t *testing.T) {
	var b []byte
	for _, e := range []struct {
		wd   int32
		mask uint32
		name string
		len  uint32
	}{{1, InCreate, "a", 16}, {2, InMovedFrom | InIsDir, "dir.d", 8}, {3, InQOverflow, "", 0}} {
		h := make([]byte, 16+e.len)
		binary.NativeEndian.PutUint32(h[0:], uint32(e.wd))
		binary.NativeEndian.PutUint32(h[4:], e.mask)
		binary.NativeEndian.PutUint32(h[12:], e.len)
		copy(h[16:], e.name)
		b = append(b, h...)
	}
	var got []string
	if err := ParseInotify(b, func(wd int32, mask uint32, name []byte) {
		got = append(got, strconv.FormatInt(int64(wd), 10)+":"+strconv.FormatUint(uint64(mask), 10)+":"+string(name))
	}); err != nil {
		t.Fatal(err)
	}
	want := "1:256:a 2:1073741888:dir.d 3:16384:"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}
	if err := ParseInotify(b[:len(b)-1], func(int32, uint32, []byte) {}); err == nil {
		t.Error("a truncated buffer parsed")
	}
}
