package platform

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtures returns the names of the files in testdata/dir.
func fixtures(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatalf("no fixtures in testdata/%s", dir)
	}
	return out
}

// TestParseStat checks every fixture in testdata/stat: the real captures
// (see testdata/capture.sh) and the hand-made hostile ones (hand-*). Each
// fixture must be listed here, so a new one cannot go unchecked.
func TestParseStat(t *testing.T) {
	ok := func(s Stat) *Stat { return &s }
	tests := map[string]*Stat{ // nil: ParseStat must fail
		// Real captures.
		"self":     ok(Stat{PID: 628, Comm: []byte("cp"), State: 'R', PPID: 624, Flags: 4194560, Threads: 1, StartTime: 120079, RSSPages: 526}),
		"busy":     ok(Stat{PID: 893, Comm: []byte("sleep"), State: 'S', PPID: 624, Flags: 4194304, UTime: 100, STime: 91, Threads: 1, StartTime: 120229, RSSPages: 391}),
		"kthreadd": ok(Stat{PID: 2, Comm: []byte("kthreadd"), State: 'S', PPID: 0, Flags: 2129984, Threads: 1, StartTime: 20}),
		"kworker-nice-neg": ok(Stat{PID: 13, Comm: []byte("kworker/R-mm_percpu_wq"), State: 'I', PPID: 2, Flags: 69238880,
			Nice: -20, Threads: 1, StartTime: 20}),
		"migration-rt":    ok(Stat{PID: 18, Comm: []byte("migration/0"), State: 'S', PPID: 2, Flags: 69238848, STime: 17, Threads: 1, StartTime: 20}),
		"niced-neg":       ok(Stat{PID: 889, Comm: []byte("sleep"), State: 'R', PPID: 624, Flags: 4194560, Nice: -5, Threads: 1, StartTime: 120225, RSSPages: 33}),
		"stopped":         ok(Stat{PID: 1033, Comm: []byte("sleep"), State: 'T', PPID: 624, Flags: 4194304, Threads: 1, StartTime: 120457, RSSPages: 410}),
		"zombie":          ok(Stat{PID: 1041, Comm: []byte("sleep"), State: 'Z', PPID: 1038, Flags: 4227084, Threads: 1, StartTime: 120473}),
		"paren-inside":    ok(Stat{PID: 816, Comm: []byte("a) b (c"), State: 'S', PPID: 624, Flags: 4194304, Threads: 1, StartTime: 120178, RSSPages: 425}),
		"paren-pair":      ok(Stat{PID: 827, Comm: []byte(") ("), State: 'S', PPID: 624, Flags: 4194304, Threads: 1, StartTime: 120183, RSSPages: 421}),
		"lone-close":      ok(Stat{PID: 839, Comm: []byte(")"), State: 'S', PPID: 624, Flags: 4194304, Threads: 1, StartTime: 120189, RSSPages: 412}),
		"opens":           ok(Stat{PID: 844, Comm: []byte("(("), State: 'S', PPID: 624, Flags: 4194304, Threads: 1, StartTime: 120194, RSSPages: 403}),
		"spaces":          ok(Stat{PID: 849, Comm: []byte("x y z"), State: 'S', PPID: 624, Flags: 4194304, Threads: 1, StartTime: 120198, RSSPages: 419}),
		"newline":         ok(Stat{PID: 860, Comm: []byte("nl\nx"), State: 'S', PPID: 624, Flags: 4194304, Threads: 1, StartTime: 120204, RSSPages: 413}),
		"invalid-utf8":    ok(Stat{PID: 872, Comm: []byte("bad\xff\xfeu"), State: 'S', PPID: 624, Flags: 4194304, Threads: 1, StartTime: 120211, RSSPages: 412}),
		"fake-fields":     ok(Stat{PID: 881, Comm: []byte("x) S 1 2 3"), State: 'S', PPID: 624, Flags: 4194304, Threads: 1, StartTime: 120219, RSSPages: 415}),
		"name-spoofs-uid": ok(Stat{PID: 1080, Comm: []byte("\nUid:\t0\t0\t0\t0"), State: 'S', PPID: 624, Flags: 4194560, Threads: 1, StartTime: 120510, RSSPages: 421}),

		// Hand-made: valid.
		"hand-empty-comm": ok(Stat{PID: 4242, Comm: []byte(""), State: 'S', PPID: 1, Flags: 4194560, UTime: 5, STime: 7, Threads: 3, StartTime: 1000, RSSPages: 12}),
		"hand-huge": ok(Stat{PID: 1<<31 - 1, Comm: []byte("huge"), State: 'R', PPID: 1<<31 - 1, Flags: 1<<32 - 1,
			UTime: 1<<64 - 1, STime: 1<<64 - 1, Nice: 19, Threads: 1<<31 - 1, StartTime: 1<<64 - 1, RSSPages: 1<<63 - 1}),
		"hand-nice-min":      ok(Stat{PID: 4242, Comm: []byte("nice"), State: 'S', PPID: 1, UTime: 5, STime: 7, Nice: -20, Threads: 3, StartTime: 1000, RSSPages: 12}),
		"hand-neg-rss":       ok(Stat{PID: 4242, Comm: []byte("neg"), State: 'S', PPID: 1, Flags: 4194560, UTime: 5, STime: 7, Threads: 3, StartTime: 1000, RSSPages: -1}),
		"hand-exact-24":      ok(Stat{PID: 4242, Comm: []byte("short"), State: 'S', PPID: 1, Flags: 4194560, UTime: 5, STime: 7, Threads: 3, StartTime: 1000, RSSPages: 12}),
		"hand-long-comm":     ok(Stat{PID: 776, Comm: []byte("kworker/1:2-cgroup_pidlist_destroy_and_some_more_text_up_to_64b"), State: 'S', PPID: 2, Flags: 69238880, UTime: 5, STime: 7, Threads: 3, StartTime: 1000, RSSPages: 12}),
		"hand-nested-parens": ok(Stat{PID: 7, Comm: []byte("((()))"), State: 'S', PPID: 1, Flags: 4194560, UTime: 5, STime: 7, Threads: 3, StartTime: 1000, RSSPages: 12}),
		"hand-nul-in-comm":   ok(Stat{PID: 5, Comm: []byte("a\x00b"), State: 'S', PPID: 1, Flags: 4194560, UTime: 5, STime: 7, Threads: 3, StartTime: 1000, RSSPages: 12}),
		"hand-double-space":  ok(Stat{PID: 12, Comm: []byte("dbl"), State: 'S', PPID: 1, Flags: 4194560, UTime: 5, STime: 7, Threads: 3, StartTime: 1000, RSSPages: 12}),
		"hand-newline-sep":   ok(Stat{PID: 4242, Comm: []byte("nlsep"), State: 'S', PPID: 1, Flags: 4194560, UTime: 5, STime: 7, Threads: 3, StartTime: 1000, RSSPages: 12}),

		// Hand-made: invalid.
		"hand-overflow-utime":    nil,
		"hand-pid-overflow":      nil,
		"hand-pid-zero":          nil,
		"hand-pid-negative":      nil,
		"hand-pid-garbage":       nil,
		"hand-nice-overflow":     nil,
		"hand-missing-rss":       nil,
		"hand-missing-many":      nil,
		"hand-no-close":          nil,
		"hand-no-paren":          nil,
		"hand-close-before-open": nil,
		"hand-empty":             nil,
		"hand-state-two":         nil,
		"hand-negative-utime":    nil,
		"hand-plus-sign":         nil,
		"hand-tab-sep":           nil, // the kernel separates by single spaces only
		"hand-cut-mid":           nil, // a short read
	}
	for _, name := range fixtures(t, "stat") {
		if _, ok := tests[name]; !ok {
			t.Errorf("testdata/stat/%s has no expectation in TestParseStat", name)
		}
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			b := readFixture(t, filepath.Join("stat", name))
			var got Stat
			err := ParseStat(b, &got)
			if want == nil {
				if err == nil {
					t.Fatalf("ParseStat succeeded, want an error; got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStat: %v", err)
			}
			if !statEqual(got, *want) {
				t.Errorf("ParseStat =\n %s\nwant\n %s", fmtStat(got), fmtStat(*want))
			}
			// The comm aliases the input: no copy per process per tick.
			if len(got.Comm) > 0 && &got.Comm[0] != &b[bytes.IndexByte(b, '(')+1] {
				t.Error("Comm does not alias the input buffer")
			}
		})
	}
}

// TestParseStatReference cross-checks ParseStat against refParseStat, an
// independent, slow implementation, on every fixture.
func TestParseStatReference(t *testing.T) {
	for _, name := range fixtures(t, "stat") {
		b := readFixture(t, filepath.Join("stat", name))
		checkStatAgainstReference(t, name, b)
	}
}

// TestParseStatReusesStruct: the sampler parses every process into one
// scratch Stat, so no field may leak from the previous process.
func TestParseStatReusesStruct(t *testing.T) {
	var s Stat
	if err := ParseStat(readFixture(t, "stat/hand-huge"), &s); err != nil {
		t.Fatal(err)
	}
	if err := ParseStat(readFixture(t, "stat/kthreadd"), &s); err != nil {
		t.Fatal(err)
	}
	want := Stat{PID: 2, Comm: []byte("kthreadd"), State: 'S', PPID: 0, Flags: 2129984, Threads: 1, StartTime: 20}
	if !statEqual(s, want) {
		t.Errorf("after reuse: %s, want %s", fmtStat(s), fmtStat(want))
	}
}

func TestParseStatErrorsAreShort(t *testing.T) {
	// A hostile comm or field must not blow up log lines.
	b := []byte("1 (x) " + strings.Repeat("Z", 10000) + " 1 1\n")
	var s Stat
	err := ParseStat(b, &s)
	if err == nil {
		t.Fatal("want an error")
	}
	if len(err.Error()) > 100 {
		t.Errorf("error is %d bytes long: %.120s", len(err.Error()), err)
	}
	if err := ParseStat([]byte("1 (x) S 1 2 3"), &s); !errors.Is(err, errStatShort) {
		t.Errorf("short stat: err = %v, want errStatShort", err)
	}
}

func statEqual(a, b Stat) bool {
	return a.PID == b.PID && bytes.Equal(a.Comm, b.Comm) && a.State == b.State && a.PPID == b.PPID &&
		a.Flags == b.Flags && a.UTime == b.UTime && a.STime == b.STime && a.Nice == b.Nice &&
		a.Threads == b.Threads && a.StartTime == b.StartTime && a.RSSPages == b.RSSPages
}

func fmtStat(s Stat) string {
	return "pid=" + strconv.Itoa(int(s.PID)) + " comm=" + strconv.Quote(string(s.Comm)) +
		" state=" + strconv.QuoteRune(rune(s.State)) + " ppid=" + strconv.Itoa(int(s.PPID)) +
		" flags=" + strconv.FormatUint(uint64(s.Flags), 10) +
		" utime=" + strconv.FormatUint(s.UTime, 10) + " stime=" + strconv.FormatUint(s.STime, 10) +
		" nice=" + strconv.Itoa(int(s.Nice)) + " threads=" + strconv.Itoa(int(s.Threads)) +
		" start=" + strconv.FormatUint(s.StartTime, 10) + " rss=" + strconv.FormatInt(s.RSSPages, 10)
}

// refParseStat is a deliberately different implementation of proc(5)'s
// format, built on strings and strconv, for differential tests. It follows
// the same documented rules: the comm runs from the first '(' to the last
// ')'; fields are separated by spaces (newlines tolerated); numbers are
// plain decimals of at most 20 digits (the kernel never pads), signed only
// by a leading '-'.
func refParseStat(b []byte) (Stat, bool) {
	s := string(b)
	open, closing := strings.Index(s, "("), strings.LastIndex(s, ")")
	if open < 0 || closing < open {
		return Stat{}, false
	}
	var st Stat
	pid, ok := refInt(strings.TrimSpace(s[:open]), 1, 1<<31-1)
	if !ok {
		return Stat{}, false
	}
	st.PID = int32(pid)
	st.Comm = b[open+1 : closing]
	f := strings.FieldsFunc(s[closing+1:], func(r rune) bool { return r == ' ' || r == '\n' })
	if len(f) < 22 { // fields 3..24
		return Stat{}, false
	}
	field := func(n int) string { return f[n-3] }
	if len(field(3)) != 1 {
		return Stat{}, false
	}
	st.State = field(3)[0]
	var v int64
	var u uint64
	if v, ok = refInt(field(4), -1<<31, 1<<31-1); !ok {
		return Stat{}, false
	}
	st.PPID = int32(v)
	if u, ok = refUint(field(9)); !ok {
		return Stat{}, false
	}
	st.Flags = uint32(u) // proc(5): %u, an unsigned int
	if st.UTime, ok = refUint(field(14)); !ok {
		return Stat{}, false
	}
	if st.STime, ok = refUint(field(15)); !ok {
		return Stat{}, false
	}
	if v, ok = refInt(field(19), -1<<31, 1<<31-1); !ok {
		return Stat{}, false
	}
	st.Nice = int32(v)
	if v, ok = refInt(field(20), -1<<31, 1<<31-1); !ok {
		return Stat{}, false
	}
	st.Threads = int32(v)
	if st.StartTime, ok = refUint(field(22)); !ok {
		return Stat{}, false
	}
	if st.RSSPages, ok = refInt(field(24), -1<<63, 1<<63-1); !ok {
		return Stat{}, false
	}
	return st, true
}

func refUint(s string) (uint64, bool) {
	if len(s) > 20 || strings.HasPrefix(s, "+") {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

func refInt(s string, lo, hi int64) (int64, bool) {
	if len(strings.TrimPrefix(s, "-")) > 20 || strings.HasPrefix(s, "+") {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v >= lo && v <= hi
}

// checkStatAgainstReference fails t when ParseStat and refParseStat
// disagree on b, and checks that a parsed comm is exactly the bytes between
// the first '(' and the last ')'.
func checkStatAgainstReference(t testing.TB, name string, b []byte) {
	t.Helper()
	var got Stat
	err := ParseStat(b, &got)
	want, ok := refParseStat(b)
	if (err == nil) != ok {
		t.Fatalf("%s: ParseStat err=%v, reference ok=%v on %q", name, err, ok, truncateForLog(b))
	}
	if err != nil {
		return
	}
	if !statEqual(got, want) {
		t.Fatalf("%s: ParseStat = %s\nreference = %s\ninput %q", name, fmtStat(got), fmtStat(want), truncateForLog(b))
	}
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if !bytes.Equal(got.Comm, b[open+1:closing]) {
		t.Fatalf("%s: comm %q, want the bytes between the first '(' and the last ')': %q", name, got.Comm, b[open+1:closing])
	}
}

func truncateForLog(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}

// BenchmarkParseStat parses a real /proc/PID/stat: it runs for every
// process on every tick, so it must not allocate.
func BenchmarkParseStat(b *testing.B) {
	buf := readFixture(b, "stat/busy")
	var s Stat
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := ParseStat(buf, &s); err != nil {
			b.Fatal(err)
		}
	}
	if s.UTime != 100 {
		b.Fatalf("utime %d", s.UTime)
	}
}

func TestParseStatDoesNotAllocate(t *testing.T) {
	buf := readFixture(t, "stat/paren-inside")
	var s Stat
	if n := testing.AllocsPerRun(100, func() { _ = ParseStat(buf, &s) }); n != 0 {
		t.Errorf("ParseStat allocates %v times per call, want 0", n)
	}
}
