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

	if _, err := ReadGroupStats(v2, "base/u2000"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing group: %v", err)
	}
}

// realGroup creates an empty group gdt-<random> under the test process's
// own group of every hierarchy guardd reads, removed when the test ends.
func realGroup(tb testing.TB) (*CgroupLayout, string) {
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
		if err := os.Mkdir(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			if err := os.Remove(dir); err != nil {
				tb.Errorf("remove %s: %v", dir, err)
			}
		})
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

// BenchmarkReadGroupStats: one user's counters, on a real group here.
func BenchmarkReadGroupStats(b *testing.B) {
	l, name := realGroup(b)
	r := GroupStatsReader{Leaves: []string{"work", "kept"}}
	var s GroupStats
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Read(l, name, &s); err != nil {
			b.Fatal(err)
		}
	}
}
