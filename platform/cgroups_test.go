package platform

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// layoutFixture parses testdata/cgroups/layout-NAME-{mountinfo,cgroup,controllers}.
func layoutFixture(t *testing.T, name string) *CgroupLayout {
	t.Helper()
	dir := filepath.Join("testdata", "cgroups")
	mi, err := os.ReadFile(filepath.Join(dir, "layout-"+name+"-mountinfo"))
	if err != nil {
		t.Fatal(err)
	}
	cg, err := os.ReadFile(filepath.Join(dir, "layout-"+name+"-cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	var asked []string
	l, err := ParseCgroupLayout(mi, cg, func(d string) ([]byte, error) {
		asked = append(asked, d)
		return os.ReadFile(filepath.Join(dir, "layout-"+name+"-controllers"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if l.V2 != nil && (len(asked) != 1 || asked[0] != l.V2.Dir()) {
		t.Errorf("cgroup.controllers read from %v, want [%s]", asked, l.V2.Dir())
	}
	return l
}

func TestParseCgroupLayout(t *testing.T) {
	type hier struct{ mount, own, dir string }
	for _, c := range []struct {
		name string
		mode string
		v2   *hier
		v2c  []string
		v1   map[string]hier // by controller
	}{
		// This machine kind: v1 roots with the process at /, memory in a
		// session child group, an empty cgroup2 mount.
		{name: "hybrid", mode: CgroupV1,
			v2: &hier{"/sys/fs/cgroup/unified", "/", "/sys/fs/cgroup/unified"},
			v1: map[string]hier{
				"cpu":     {"/sys/fs/cgroup/cpu", "/", "/sys/fs/cgroup/cpu"},
				"cpuacct": {"/sys/fs/cgroup/cpuacct", "/", "/sys/fs/cgroup/cpuacct"},
				"memory": {"/sys/fs/cgroup/memory", "/process_api/29e1afb533e3fa4932a1a037caefe962",
					"/sys/fs/cgroup/memory/process_api/29e1afb533e3fa4932a1a037caefe962"},
				"pids":    {"/sys/fs/cgroup/pids", "/", "/sys/fs/cgroup/pids"},
				"blkio":   {"/sys/fs/cgroup/blkio", "/", "/sys/fs/cgroup/blkio"},
				"freezer": {"/sys/fs/cgroup/freezer", "/", "/sys/fs/cgroup/freezer"},
			}},
		{name: "v2", mode: CgroupV2,
			v2:  &hier{"/sys/fs/cgroup", "/system.slice/guardd.service", "/sys/fs/cgroup/system.slice/guardd.service"},
			v2c: []string{"cpu", "cpuset", "hugetlb", "io", "memory", "misc", "pids", "rdma"}},
		// CentOS 7: cpu and cpuacct co-mounted, no cgroup2 at all.
		{name: "legacy", mode: CgroupV1,
			v1: map[string]hier{
				"cpu":     {"/sys/fs/cgroup/cpu,cpuacct", "/system.slice/guardd.service", "/sys/fs/cgroup/cpu,cpuacct/system.slice/guardd.service"},
				"cpuacct": {"/sys/fs/cgroup/cpu,cpuacct", "/system.slice/guardd.service", "/sys/fs/cgroup/cpu,cpuacct/system.slice/guardd.service"},
				"memory":  {"/sys/fs/cgroup/memory", "/system.slice/guardd.service", "/sys/fs/cgroup/memory/system.slice/guardd.service"},
				"pids":    {"/sys/fs/cgroup/pids", "/system.slice/guardd.service", "/sys/fs/cgroup/pids/system.slice/guardd.service"},
				"blkio":   {"/sys/fs/cgroup/blkio", "/system.slice/guardd.service", "/sys/fs/cgroup/blkio/system.slice/guardd.service"},
				"freezer": {"/sys/fs/cgroup/freezer", "/", "/sys/fs/cgroup/freezer"},
			}},
		// A cgroup namespace: the process sees its group as "/".
		{name: "ns", mode: CgroupV2, v2: &hier{"/sys/fs/cgroup", "/", "/sys/fs/cgroup"}, v2c: []string{"cpu", "io", "memory", "pids"}},
		// A mount of a sibling subtree: not guardd's to write.
		{name: "sibling", mode: CgroupNone},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := layoutFixture(t, c.name)
			if l.Mode != c.mode {
				t.Errorf("mode %s, want %s", l.Mode, c.mode)
			}
			switch {
			case c.v2 == nil && l.V2 != nil:
				t.Errorf("v2 %+v, want none", l.V2)
			case c.v2 != nil && l.V2 == nil:
				t.Errorf("no v2, want %+v", c.v2)
			case c.v2 != nil:
				if l.V2.Mount != c.v2.mount || l.V2.Own != c.v2.own || l.V2.Dir() != c.v2.dir {
					t.Errorf("v2 %+v (dir %s), want %+v", l.V2, l.V2.Dir(), c.v2)
				}
				if !slices.Equal(l.V2.Controllers, c.v2c) {
					t.Errorf("v2 controllers %q, want %q", l.V2.Controllers, c.v2c)
				}
			}
			if len(l.V1) != len(c.v1) {
				t.Errorf("v1 %d controllers, want %d", len(l.V1), len(c.v1))
			}
			for ctrl, w := range c.v1 {
				h := l.V1[ctrl]
				if h == nil {
					t.Errorf("no v1 %s", ctrl)
					continue
				}
				if h.Mount != w.mount || h.Own != w.own || h.Dir() != w.dir || !h.Has(ctrl) {
					t.Errorf("v1 %s: %+v (dir %s), want %+v", ctrl, h, h.Dir(), w)
				}
			}
			if c.name == "legacy" {
				if l.V1["cpu"] != l.V1["cpuacct"] || len(l.V1Hierarchies()) != 5 {
					t.Errorf("co-mounted cpu,cpuacct not shared: %d hierarchies", len(l.V1Hierarchies()))
				}
				if l.V1["cpuset"] != nil {
					t.Error("cpuset is not guardd's")
				}
			}
		})
	}
}

// TestCgroupHierarchyPaths: a mount that shows a subtree (a container
// without a cgroup namespace) maps /proc paths below its root.
func TestCgroupHierarchyPaths(t *testing.T) {
	mi := []byte("40 22 0:37 /docker/abc /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n")
	cg := []byte("8:pids:/docker/abc\n")
	l, err := ParseCgroupLayout(mi, cg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := l.V1["pids"]
	if h == nil || h.Dir() != "/sys/fs/cgroup/pids" {
		t.Fatalf("pids %+v", h)
	}
	if got := h.Path("/docker/abc/guardd-users/u1000"); got != "/sys/fs/cgroup/pids/guardd-users/u1000" {
		t.Errorf("Path: %s", got)
	}
	for _, c := range []struct {
		group, rel string
		ok         bool
	}{
		{"/docker/abc", "", true},
		{"/docker/abc/guardd-users/u1000/work", "guardd-users/u1000/work", true},
		{"/docker/abcd/x", "", false}, // a sibling whose name starts alike
		{"/", "", false},
	} {
		if rel, ok := h.Rel(c.group); rel != c.rel || ok != c.ok {
			t.Errorf("Rel(%s) = %q %v, want %q %v", c.group, rel, ok, c.rel, c.ok)
		}
	}
	if l.Placement() != h {
		t.Errorf("placement %+v, want pids", l.Placement())
	}
}

func TestParseProcCgroup(t *testing.T) {
	got, err := ParseProcCgroup([]byte("4:memory:/a:b/c\n1:cpu,cpuacct:/\n0::/x\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []ProcCgroup{{4, []string{"memory"}, "/a:b/c"}, {1, []string{"cpu", "cpuacct"}, "/"}, {0, nil, "/x"}}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Path != want[i].Path || !slices.Equal(got[i].Controllers, want[i].Controllers) {
			t.Errorf("line %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"x::/", "1:cpu", "1:cpu:relative", "99999999999:cpu:/"} {
		if _, err := ParseProcCgroup([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	hy := layoutFixture(t, "hybrid")
	cg := []byte("8:pids:/gdt/u1000/work\n4:memory:/s/gdt/u1000/work\n0::/gdt/u1000/work\n")
	if p, err := ProcCgroupIn(cg, hy.Placement()); err != nil || p != "/gdt/u1000/work" {
		t.Errorf("v1 placement %q %v", p, err)
	}
	if p, err := ProcCgroupIn(cg, hy.V1["memory"]); err != nil || p != "/s/gdt/u1000/work" {
		t.Errorf("memory %q %v", p, err)
	}
	if _, err := ProcCgroupIn([]byte("0::/\n"), hy.V1["memory"]); err == nil {
		t.Error("no memory line, yet a path")
	}
}

// Counter files as real kernels write them (v2: 6.1; v1: this machine's).
const (
	v2CPUStat = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 120\nnr_throttled 40\nthrottled_usec 1500000\nnr_bursts 0\nburst_usec 0\n"
	v1CPUStat = "nr_periods 120\nnr_throttled 40\nthrottled_time 1500000123\nnr_bursts 0\nburst_time 0\n"
	memEvents = "low 0\nhigh 17\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n"
	oomCtl    = "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n"
	ioStat    = "8:0 rbytes=1000 wbytes=20 rios=3 wios=1 dbytes=0 dios=0\n253:0 rbytes=24 wbytes=5 rios=1 wios=1 dbytes=0 dios=0\n"
	blkio     = "8:0 Read 1000\n8:0 Write 20\n8:0 Sync 20\n8:0 Async 1000\n8:0 Discard 0\n8:0 Total 1020\n253:0 Read 24\n253:0 Write 5\nTotal 1049\n"
	pressure  = "some avg10=12.34 avg60=3.51 avg300=8.23 total=4395589363\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
)

func TestParseGroupCounters(t *testing.T) {
	var s GroupStats
	ParseCPUStat([]byte(v2CPUStat), &s)
	if s.CPUUsageUsec != 2500000 || s.CPUThrottledUsec != 1500000 || s.CPUThrottled != 40 || s.CPUPeriods != 120 || !s.Has(StatCPUUsage|StatCPUThrottled) {
		t.Errorf("v2 cpu.stat: %+v", s)
	}
	s = GroupStats{}
	ParseCPUStat([]byte("usage_usec 7\nuser_usec 5\nsystem_usec 2\n"), &s) // no cpu controller: no throttling
	if s.CPUUsageUsec != 7 || s.Has(StatCPUThrottled) {
		t.Errorf("core cpu.stat: %+v", s)
	}
	s = GroupStats{}
	ParseCPUStat([]byte(v1CPUStat), &s)
	if s.CPUThrottledUsec != 1500000 || s.CPUThrottled != 40 || s.Has(StatCPUUsage) {
		t.Errorf("v1 cpu.stat: %+v", s)
	}
	s = GroupStats{}
	ParseMemoryEvents([]byte(memEvents), &s)
	if s.MemoryHigh != 17 || s.MemoryMax != 3 || s.MemoryOOM != 2 || s.MemoryOOMKill != 1 ||
		!s.Has(StatMemoryHigh|StatMemoryMax|StatMemoryOOM|StatMemoryOOMKill) {
		t.Errorf("memory.events: %+v", s)
	}
	s = GroupStats{}
	ParseOOMControl([]byte(oomCtl), &s)
	if s.MemoryOOMKill != 4 || !s.Has(StatMemoryOOMKill) || s.Has(StatMemoryOOM) {
		t.Errorf("oom_control: %+v", s)
	}
	s = GroupStats{}
	ParsePidsEvents([]byte("max 9\n"), &s)
	if s.PidsRefused != 9 || !s.Has(StatPidsRefused) {
		t.Errorf("pids.events: %+v", s)
	}
	s = GroupStats{}
	ParseIOStat([]byte(ioStat), &s)
	if s.IOReadBytes != 1024 || s.IOWriteBytes != 25 {
		t.Errorf("io.stat: %+v", s)
	}
	s = GroupStats{}
	ParseBlkioBytes([]byte(blkio), &s)
	if s.IOReadBytes != 1024 || s.IOWriteBytes != 25 {
		t.Errorf("blkio: %+v", s)
	}
	for in, want := range map[string]float64{pressure: 12.34, "some avg10=0.00 avg60=0": 0, "some avg10=7 x": 7} {
		if v, ok := ParsePressureSome([]byte(in)); !ok || v != want {
			t.Errorf("pressure %q: %v %v, want %v", in, v, ok, want)
		}
	}
	for _, bad := range []string{"", "full avg10=1.00", "some avg10=x", "some avg60=1"} {
		if _, ok := ParsePressureSome([]byte(bad)); ok {
			t.Errorf("pressure %q parsed", bad)
		}
	}
}

func FuzzParseCgroupLayout(f *testing.F) {
	for _, n := range []string{"hybrid", "v2", "legacy", "ns", "sibling"} {
		mi, _ := os.ReadFile(filepath.Join("testdata", "cgroups", "layout-"+n+"-mountinfo"))
		cg, _ := os.ReadFile(filepath.Join("testdata", "cgroups", "layout-"+n+"-cgroup"))
		f.Add(mi, cg)
	}
	f.Fuzz(func(t *testing.T, mi, cg []byte) {
		l, err := ParseCgroupLayout(mi, cg, func(string) ([]byte, error) { return []byte("cpu memory"), nil })
		if err != nil {
			return
		}
		for _, h := range append(l.V1Hierarchies(), l.V2) {
			if h != nil && !under(h.Own, h.Root) {
				t.Fatalf("own %q outside root %q", h.Own, h.Root)
			}
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	for _, n := range []string{"hybrid", "v2", "legacy", "ns", "sibling"} {
		cg, _ := os.ReadFile(filepath.Join("testdata", "cgroups", "layout-"+n+"-cgroup"))
		f.Add(cg)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := ParseProcCgroup(b)
		if err != nil {
			return
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Path, "/") || strings.Contains(e.Path, "\n") {
				t.Fatalf("path %q", e.Path)
			}
		}
	})
}

// FuzzParseGroupCounters: no counter file makes a parser panic, and PSI
// is a percentage only when it parses.
func FuzzParseGroupCounters(f *testing.F) {
	for _, s := range []string{v2CPUStat, v1CPUStat, memEvents, oomCtl, ioStat, blkio, pressure} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s GroupStats
		ParseCPUStat(b, &s)
		ParseMemoryEvents(b, &s)
		ParseOOMControl(b, &s)
		ParsePidsEvents(b, &s)
		ParseIOStat(b, &s)
		ParseBlkioBytes(b, &s)
		if v, ok := ParsePressureSome(b); ok && (v < 0 || v > 1e12) {
			t.Fatalf("pressure %v", v)
		}
	})
}

func TestParsePressureFullTotal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"some avg10=1.00 avg60=0.50 avg300=0.10 total=123\nfull avg10=0.50 avg60=0.20 avg300=0.05 total=4567\n", 4567, true},
		{"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", 0, false},
		{"full avg10=0.00 avg60=0.00 avg300=0.00 total=\n", 0, false},
		{"", 0, false},
	} {
		got, ok := ParsePressureFullTotal([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParsePressureFullTotal(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
