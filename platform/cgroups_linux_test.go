package platform

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadGroupStatsFake reads a fake tree laid out like cgroupfs, v2
// and v1: every file lands in its field; PSI is unavailable on v1.
func TestReadGroupStatsFake(t *testing.T) {
	root := t.TempDir()
	write := func(dir string, files map[string]string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	v2 := &CgroupLayout{Mode: CgroupV2, V2: &CgroupHierarchy{Version: 2, Mount: root + "/v2", Root: "/", Own: "/guardd"}}
	write(root+"/v2/guardd/base/u1000", map[string]string{
		"cpu.stat": v2CPUStat, "memory.current": "123456\n", "memory.events": memEvents,
		"pids.current": "7\n", "pids.events": "max 9\n", "io.stat": ioStat,
		"cpu.pressure": pressure, "memory.pressure": strings.Replace(pressure, "12.34", "1.50", 1),
	})
	s, err := ReadGroupStats(v2, "base/u1000")
	if err != nil {
		t.Fatal(err)
	}
	want := GroupStats{CPUUsageUsec: 2500000, CPUThrottledUsec: 1500000, CPUThrottled: 40, CPUPeriods: 120,
		MemoryCurrent: 123456, MemoryHigh: 17, MemoryMax: 3, MemoryOOM: 2, MemoryOOMKill: 1,
		PidsCurrent: 7, PidsRefused: 9, IOReadBytes: 1024, IOWriteBytes: 25, CPUPressure: 12.34, MemoryPressure: 1.5}
	want.Avail = s.Avail
	if s != want {
		t.Errorf("v2:\n got %+v\nwant %+v", s, want)
	}
	if !s.Has(StatCPUPressure|StatMemoryPressure) || s.Has(StatIOPressure) {
		t.Errorf("v2 pressure availability %b: io.pressure is absent here", s.Avail)
	}

	hier := func(name, own string, ctrls ...string) *CgroupHierarchy {
		return &CgroupHierarchy{Version: 1, Mount: root + "/v1/" + name, Root: "/", Own: own, Controllers: ctrls}
	}
	cpu, acct, mem, pids, blk := hier("cpu", "/"), hier("cpuacct", "/"), hier("memory", "/session/x"), hier("pids", "/"), hier("blkio", "/")
	v1 := &CgroupLayout{Mode: CgroupV1, V1: map[string]*CgroupHierarchy{"cpu": cpu, "cpuacct": acct, "memory": mem, "pids": pids, "blkio": blk}}
	write(root+"/v1/cpu/base/u1000", map[string]string{"cpu.stat": v1CPUStat})
	write(root+"/v1/cpuacct/base/u1000", map[string]string{"cpuacct.usage": "2500000999\n"})
	write(root+"/v1/memory/session/x/base/u1000", map[string]string{"memory.usage_in_bytes": "123456\n", "memory.failcnt": "3\n", "memory.oom_control": oomCtl})
	// v1 counts an OOM kill and a refused fork in the process's own
	// group: the leaves add theirs.
	write(root+"/v1/memory/session/x/base/u1000/work", map[string]string{"memory.oom_control": "oom_kill 2\n"})
	write(root+"/v1/pids/base/u1000", map[string]string{"pids.current": "7\n", "pids.events": "max 9\n"})
	write(root+"/v1/pids/base/u1000/kept", map[string]string{"pids.events": "max 1\n"})
	write(root+"/v1/blkio/base/u1000", map[string]string{"blkio.throttle.io_service_bytes": blkio})
	s, err = ReadGroupStats(v1, "base/u1000", "work", "kept")
	if err != nil {
		t.Fatal(err)
	}
	want = GroupStats{CPUUsageUsec: 2500000, CPUThrottledUsec: 1500000, CPUThrottled: 40, CPUPeriods: 120,
		MemoryCurrent: 123456, MemoryMax: 3, MemoryOOMKill: 6, PidsCurrent: 7, PidsRefused: 10, IOReadBytes: 1024, IOWriteBytes: 25}
	want.Avail = s.Avail
	if s != want {
		t.Errorf("v1:\n got %+v\nwant %+v", s, want)
	}
	if s.Has(StatCPUPressure) || s.Has(StatMemoryPressure) || s.Has(StatIOPressure) || s.Has(StatMemoryHigh) || s.Has(StatMemoryOOM) {
		t.Errorf("v1 availability %b: PSI, memory high and oom are not v1's", s.Avail)
	}
	if !s.Has(StatCPUUsage | StatCPUThrottled | StatMemoryCurrent | StatMemoryMax | StatMemoryOOMKill | StatPidsCurrent | StatPidsRefused | StatIO) {
		t.Errorf("v1 availability %b", s.Avail)
	}

	// Only: the files of those fields, no others.
	r := GroupStatsReader{Only: StatCPUUsage | StatMemoryCurrent | StatPidsCurrent, Leaves: []string{"work", "kept"}}
	for _, c := range []struct {
		l    *CgroupLayout
		want GroupStats
	}{
		{v1, GroupStats{CPUUsageUsec: 2500000, MemoryCurrent: 123456, PidsCurrent: 7}},
		{v2, GroupStats{CPUUsageUsec: 2500000, CPUThrottledUsec: 1500000, CPUThrottled: 40, CPUPeriods: 120, MemoryCurrent: 123456, PidsCurrent: 7}},
	} {
		var got GroupStats
		if err := r.Read(c.l, "base/u1000", &got); err != nil {
			t.Fatal(err)
		}
		c.want.Avail = got.Avail
		if got != c.want || !got.Has(r.Only) || got.Has(StatPidsRefused) || got.Has(StatMemoryOOMKill) {
			t.Errorf("%s only core:\n got %+v\nwant %+v", c.l.Mode, got, c.want)
		}
	}

	// Open files read what ReadGroupStats reads, and again after a change.
	for _, l := range []*CgroupLayout{v1, v2} {
		want, err := ReadGroupStats(l, "base/u1000", "work", "kept")
		if err != nil {
			t.Fatal(err)
		}
		f, err := OpenGroupStats(l, "base/u1000", 0, "work", "kept")
		if err != nil {
			t.Fatal(err)
		}
		var got GroupStats
		if err := f.Read(&got); err != nil || got != want {
			t.Errorf("%s open files: %+v %v\nwant %+v", l.Mode, got, err, want)
		}
		dir := root + "/v2/guardd/base/u1000"
		if l == v1 {
			dir = root + "/v1/pids/base/u1000"
		}
		write(dir, map[string]string{"pids.current": "8\n"})
		if err := f.Read(&got); err != nil || got.PidsCurrent != 8 {
			t.Errorf("%s after a change: pids %d %v", l.Mode, got.PidsCurrent, err)
		}
		write(dir, map[string]string{"pids.current": "7\n"})
		f.Close()
	}
	if _, err := OpenGroupStats(v2, "base/u2000", 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open a missing group: %v", err)
	}

	if _, err := ReadGroupStats(v2, "base/u2000"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing group: %v", err)
	}
}

// realGroup creates an empty group gdt-<random> under the test process's
// own group of every hierarchy guardd reads, removed when the test ends.
func realGroup(tb testing.TB, leaves ...string) (*CgroupLayout, string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create cgroups")
	}
	l, err := DiscoverCgroups()
	if err != nil {
		tb.Fatal(err)
	}
	hs := l.V1Hierarchies()
	if l.Mode != CgroupV1 {
		hs = nil
		if l.V2 != nil {
			hs = append(hs, l.V2)
		}
	}
	if len(hs) == 0 {
		tb.Skip("no cgroup hierarchy here")
	}
	var rnd [4]byte
	f, err := os.Open("/dev/urandom")
	if err != nil {
		tb.Fatal(err)
	}
	f.Read(rnd[:])
	f.Close()
	name := "gdt-" + hex(rnd[:])
	for _, h := range hs {
		dir := filepath.Join(h.Dir(), name)
		for _, d := range append([]string{dir}, leaves...) {
			if d != dir {
				d = filepath.Join(dir, d)
			}
			if err := os.Mkdir(d, 0o755); err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { // leaves first: cleanups run last-in first-out
				if err := os.Remove(d); err != nil {
					tb.Errorf("remove %s: %v", d, err)
				}
			})
		}
	}
	return l, name
}

func hex(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

// TestCgroupsHere: the layout found on this host agrees with
// /proc/self/cgroup, and a fresh group's counters read back as zeros
// with what this kernel has marked available.
func TestCgroupsHere(t *testing.T) {
	l, name := realGroup(t)
	h := l.Placement()
	p, err := ProcCgroupPath(int32(os.Getpid()), l)
	if err != nil {
		t.Fatal(err)
	}
	if p != h.Own {
		t.Errorf("ProcCgroupPath(self) = %s, want own group %s", p, h.Own)
	}
	if _, err := ProcCgroupPath(1<<30, l); !errors.Is(err, ErrGone) {
		t.Errorf("a pid that does not exist: %v, want ErrGone", err)
	}
	s, err := ReadGroupStats(l, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mode %s, placement %s; stats %+v", l.Mode, h.Dir(), s)
	if !s.Has(StatCPUUsage) || s.CPUUsageUsec != 0 {
		t.Errorf("cpu usage of an empty group: %+v", s)
	}
	if l.Mode == CgroupV1 {
		if l.V1["pids"] != nil && (!s.Has(StatPidsCurrent|StatPidsRefused) || s.PidsCurrent != 0) {
			t.Errorf("pids: %+v", s)
		}
		if s.Has(StatCPUPressure) {
			t.Errorf("PSI on v1: %+v", s)
		}
	}
}

// BenchmarkReadGroupStats: one user's counters, on a real group here
// with its two leaves.
func BenchmarkReadGroupStats(b *testing.B) {
	l, name := realGroup(b, "work", "kept")
	r := GroupStatsReader{Leaves: []string{"work", "kept"}}
	var s GroupStats
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Read(l, name, &s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadGroupStatsCore: CPU time, memory and processes only, what
// a tick needs for user.cpu_percent, user.rss_mb and user.procs.
func BenchmarkReadGroupStatsCore(b *testing.B) {
	l, name := realGroup(b, "work", "kept")
	r := GroupStatsReader{Only: StatCPUUsage | StatMemoryCurrent | StatPidsCurrent}
	var s GroupStats
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Read(l, name, &s); err != nil {
			b.Fatal(err)
		}
	}
	if !s.Has(r.Only) {
		b.Fatalf("read %+v", s)
	}
}

// BenchmarkGroupStatsFilesCore: the same three counters from files held
// open.
func BenchmarkGroupStatsFilesCore(b *testing.B) {
	l, name := realGroup(b, "work", "kept")
	f, err := OpenGroupStats(l, name, StatCPUUsage|StatMemoryCurrent|StatPidsCurrent)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var s GroupStats
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Read(&s); err != nil {
			b.Fatal(err)
		}
	}
	if !s.Has(StatCPUUsage | StatMemoryCurrent | StatPidsCurrent) {
		b.Fatalf("read %+v", s)
	}
}

// BenchmarkGroupStatsFiles: every counter from files held open.
func BenchmarkGroupStatsFiles(b *testing.B) {
	l, name := realGroup(b, "work", "kept")
	f, err := OpenGroupStats(l, name, 0, "work", "kept")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var s GroupStats
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Read(&s); err != nil {
			b.Fatal(err)
		}
	}
}
