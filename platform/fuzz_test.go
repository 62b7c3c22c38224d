package platform

import (
	"bytes"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets for every parser of kernel and account text. Each is seeded
// from the fixtures; crashers found are kept under testdata/fuzz/ and run
// as regression cases by plain `go test`. The first property of all of
// them is that they never panic: these files are read from a host where
// customers choose process names, arguments and, on a compromised box, more.

func addFixtures(f *testing.F, dir string, match string) {
	for _, name := range fixtures(f, dir) {
		if strings.Contains(name, match) {
			f.Add(readFixture(f, filepath.Join(dir, name)))
		}
	}
}

func FuzzParseStat(f *testing.F) {
	addFixtures(f, "stat", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		// Agrees with the reference parser, and a parsed comm is exactly
		// the bytes between the first '(' and the last ')'.
		checkStatAgainstReference(t, "fuzz", b)
		var s Stat
		if ParseStat(b, &s) != nil {
			return
		}
		// Round trip through the kernel's format.
		line := fmt.Sprintf("%d (%s) %s %d 0 0 0 -1 %d 0 0 0 0 %d %d 0 0 20 %d %d 0 %d 0 %d 0\n",
			s.PID, s.Comm, []byte{s.State}, s.PPID, s.Flags, s.UTime, s.STime, s.Nice, s.Threads, s.StartTime, s.RSSPages)
		var again Stat
		if err := ParseStat([]byte(line), &again); err != nil {
			// The state byte may itself be a separator or a parenthesis:
			// then the formatted line is not the kernel's format.
			if s.State == ' ' || s.State == '\n' || s.State == ')' || s.State == '(' {
				return
			}
			t.Fatalf("re-parse of %q: %v", line, err)
		}
		if !statEqual(s, again) {
			t.Fatalf("round trip: %s, then %s", fmtStat(s), fmtStat(again))
		}
	})
}

func FuzzParseStatusIDs(f *testing.F) {
	addFixtures(f, "status", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := ParseStatusIDs(b)
		if err != nil {
			return
		}
		// Success needs a line starting with each of Uid: and Gid:.
		if !hasLinePrefix(b, "Uid:") || !hasLinePrefix(b, "Gid:") {
			t.Fatalf("parsed %+v from input without Uid:/Gid: lines: %q", ids, b)
		}
		out := fmt.Sprintf("Name:\tx\nUid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\n",
			ids.UID, ids.EUID, ids.EUID, ids.EUID, ids.GID, ids.EGID, ids.EGID, ids.EGID)
		again, err := ParseStatusIDs([]byte(out))
		if err != nil || again != ids {
			t.Fatalf("round trip: %+v, then %+v, %v", ids, again, err)
		}
	})
}

func hasLinePrefix(b []byte, p string) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(l, []byte(p)) {
			return true
		}
	}
	return false
}

func FuzzParseCmdline(f *testing.F) {
	for _, name := range fixtures(f, "cmdline") {
		b := readFixture(f, filepath.Join("cmdline", name))
		f.Add(b, MaxCmdline)
		f.Add(b, 7)
	}
	f.Fuzz(func(t *testing.T, b []byte, limit int) {
		got := ParseCmdline(b, limit)
		in := bytes.TrimRight(b, "\x00")
		want := min(len(in), max(limit, 0))
		if len(got) != want {
			t.Fatalf("ParseCmdline(%q, %d): %d bytes, want %d", b, limit, len(got), want)
		}
		for i := range len(got) {
			c := got[i]
			if c < 0x20 || c == 0x7f {
				t.Fatalf("control byte %#x at %d in %q", c, i, got)
			}
			if c != in[i] && c != ' ' {
				t.Fatalf("byte %d is %#x, input %#x", i, c, in[i])
			}
		}
	})
}

func FuzzParseLoadAvg(f *testing.F) {
	addFixtures(f, "host", "loadavg")
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLoadAvg(b)
		if err != nil {
			return
		}
		for _, v := range []float64{l.Load1, l.Load5, l.Load15} {
			if !(v >= 0) || math.IsInf(v, 0) {
				t.Fatalf("ParseLoadAvg(%q) = %+v: not a finite non-negative load", b, l)
			}
		}
		s := strconv.FormatFloat(l.Load1, 'g', -1, 64) + " " + strconv.FormatFloat(l.Load5, 'g', -1, 64) + " " +
			strconv.FormatFloat(l.Load15, 'g', -1, 64) + " 1/100 4242\n"
		again, err := ParseLoadAvg([]byte(s))
		if err != nil || again != l {
			t.Fatalf("round trip: %+v, then %+v, %v", l, again, err)
		}
	})
}

func FuzzParseFileNr(f *testing.F) {
	addFixtures(f, "host", "file-nr")
	f.Fuzz(func(t *testing.T, b []byte) {
		fn, err := ParseFileNr(b)
		if err != nil {
			return
		}
		if p := fn.OpenPercent(); !(p >= 0) || math.IsInf(p, 0) {
			t.Fatalf("%+v.OpenPercent() = %v", fn, p)
		}
		again, err := ParseFileNr(fmt.Appendf(nil, "%d\t%d\t%d\n", fn.Allocated, fn.Free, fn.Max))
		if err != nil || again != fn {
			t.Fatalf("round trip: %+v, then %+v, %v", fn, again, err)
		}
	})
}

func FuzzParseCPUList(f *testing.F) {
	addFixtures(f, "host", "cpu")
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseCPUList(b)
		want, ok := refCPUList(string(b))
		if (err == nil) != ok || (ok && n != want) {
			t.Fatalf("ParseCPUList(%q) = %d, %v; reference %d, %v", b, n, err, want, ok)
		}
		if err != nil {
			return
		}
		if n < 1 {
			t.Fatalf("ParseCPUList(%q) = %d", b, n)
		}
		if again, err := ParseCPUList([]byte("0-" + strconv.Itoa(n-1))); err == nil && again != n {
			t.Fatalf("0-%d counts %d", n-1, again)
		}
	})
}

// refCPUList counts a cpulist (Documentation/admin-guide/cputopology.rst)
// with strconv, for differential fuzzing. Ranges over 2^20 CPUs are refused,
// like ParseCPUList does, so a hostile file cannot make the count overflow.
func refCPUList(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	n := 0
	for _, part := range strings.Split(s, ",") {
		lo, hi, found := strings.Cut(part, "-")
		if !found {
			hi = lo
		}
		a, ok1 := refUint(lo)
		z, ok2 := refUint(hi)
		if !ok1 || !ok2 || z < a || z-a > 1<<20 {
			return 0, false
		}
		n += int(z-a) + 1
	}
	return n, true
}

func FuzzParsePasswd(f *testing.F) {
	addFixtures(f, "accounts", "passwd")
	f.Fuzz(func(t *testing.T, b []byte) {
		accs := ParsePasswd(b)
		if len(accs) > bytes.Count(b, []byte("\n"))+1 {
			t.Fatalf("%d accounts from %d lines", len(accs), bytes.Count(b, []byte("\n"))+1)
		}
		var out strings.Builder
		for _, a := range accs {
			if a.Name == "" || strings.ContainsAny(a.Name, ":\n") || strings.ContainsAny(a.Name[:1], "#+-") ||
				strings.ContainsAny(a.Home, ":\n") {
				t.Fatalf("bad account %+v", a)
			}
			fmt.Fprintf(&out, "%s:x:%d:%d:gecos:%s:/bin/sh\n", a.Name, a.UID, a.GID, a.Home)
		}
		if again := ParsePasswd([]byte(out.String())); !reflect.DeepEqual(again, accs) {
			t.Fatalf("round trip:\n%+v\nthen\n%+v", accs, again)
		}
	})
}

func FuzzParseGroup(f *testing.F) {
	addFixtures(f, "accounts", "group")
	f.Fuzz(func(t *testing.T, b []byte) {
		groups := ParseGroup(b)
		var out strings.Builder
		for _, g := range groups {
			if g.Name == "" || strings.ContainsAny(g.Name, ":\n") || strings.ContainsAny(g.Name[:1], "#+-") {
				t.Fatalf("bad group %+v", g)
			}
			for _, m := range g.Members {
				if m == "" || strings.ContainsAny(m, ",:\n") || strings.TrimSpace(m) != m {
					t.Fatalf("bad member %q in %+v", m, g)
				}
			}
			fmt.Fprintf(&out, "%s:x:%d:%s\n", g.Name, g.GID, strings.Join(g.Members, ","))
		}
		if again := ParseGroup([]byte(out.String())); !reflect.DeepEqual(again, groups) {
			t.Fatalf("round trip:\n%+v\nthen\n%+v", groups, again)
		}
	})
}
