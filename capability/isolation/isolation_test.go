package isolation

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

type fakeHost struct {
	capability.Host // methods the capability must not call: nil, they panic
	pol             *policy.Policy
	acc             *platform.Accounts
}

func (h *fakeHost) Log() *slog.Logger            { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func (h *fakeHost) Enforcer() *enforce.Enforcer  { return nil }
func (h *fakeHost) Accounts() *platform.Accounts { return h.acc }
func (h *fakeHost) Sampler() *platform.Sampler   { return nil }
func (h *fakeHost) Policy() *policy.Policy       { return h.pol }
func (h *fakeHost) ModeOverride() string         { return "" }
func (h *fakeHost) Write(*report.Event)          {}
func (h *fakeHost) Journal(*report.Event)        {}
func (h *fakeHost) SyncAudit()                   {}
func (h *fakeHost) Wake()                        {}
func (h *fakeHost) WakeUsers()                   {}
func (h *fakeHost) Facts() capability.Facts      { return capability.Facts{} }

// fakeGroups records what the capability asks of the door.
type fakeGroups struct {
	enforce.GroupDriver // the driver proper is never called: the door is faked
	ensured             map[uint32]enforce.Limits
	ensures             int
	placed              map[platform.ProcID]bool // kept?
	refuse              map[int32]bool
	set                 bool
}

func (g *fakeGroups) Name() string                  { return "fake" }
func (g *fakeGroups) Close() error                  { return nil }
func (g *fakeGroups) SetGroups(enforce.GroupDriver) { g.set = true }
func (g *fakeGroups) EnsureGroup(uid uint32, l enforce.Limits, dry bool) enforce.Result {
	g.ensured[uid] = l
	g.ensures++
	return enforce.Result{Outcome: enforce.Done}
}
func (g *fakeGroups) PlaceInGroup(p platform.ProcID, uid uint32, kept, dry bool) enforce.Result {
	if g.refuse[p.PID] {
		return enforce.Result{Outcome: enforce.Failed, Reason: "write cgroup.procs: no such process"}
	}
	g.placed[p] = kept
	return enforce.Result{Outcome: enforce.Done}
}

const testPolicy = `
class "customers" {
  uids = ["1000-59999"]
}
limits "customers" {
  class  = "customers"
  procs  = 300
  cpu    = 100
  memory = "1GiB"
  burst {
    when = host.load1 < 1
    cpu  = 250
  }
}
`

type fakeStats struct {
	r     *rig
	group string
}

func (f fakeStats) Read(s *platform.GroupStats) error { *s = f.r.stats[f.group]; return nil }
func (f fakeStats) Close() error                      { return nil }

type rig struct {
	c      *Isolation
	g      *fakeGroups
	where  map[int32]string // pid -> group as /proc/PID/cgroup says
	reads  int
	stats  map[string]platform.GroupStats
	clock  time.Time
	policy *policy.Policy
}

func newRig(t *testing.T, src string) *rig {
	t.Helper()
	p, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	r := &rig{g: &fakeGroups{ensured: map[uint32]enforce.Limits{}, placed: map[platform.ProcID]bool{}, refuse: map[int32]bool{}},
		where: map[int32]string{}, stats: map[string]platform.GroupStats{}, clock: time.Unix(1e9, 0), policy: p}
	c := &Isolation{open: func(*platform.CgroupLayout, string, uint32) (enforce.GroupDriver, error) { return r.g, nil }, door: r.g}
	c.discover = func() (*platform.CgroupLayout, error) {
		return &platform.CgroupLayout{Mode: platform.CgroupV2, V2: &platform.CgroupHierarchy{Version: 2, Mount: "/sys/fs/cgroup", Root: "/", Own: "/"}}, nil
	}
	c.whereIs = func(pid int32, _ *platform.CgroupLayout) (string, error) {
		r.reads++
		w, ok := r.where[pid]
		if !ok {
			return "", platform.ErrGone
		}
		return w, nil
	}
	c.openStats = func(_ *platform.CgroupLayout, group string) (statsFiles, error) {
		return fakeStats{r, group}, nil
	}
	c.blockDevs = func([]string) ([]platform.BlockDevice, error) { return nil, nil }
	if err := c.Start(&fakeHost{pol: p, acc: platform.NewAccounts()}, p); err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return r.clock }
	r.c = c
	return r
}

func proc(pid, ppid int32, uid uint32, start uint64) *platform.Process {
	return &platform.Process{ProcID: platform.ProcID{PID: pid, StartTime: start}, PPID: ppid, UID: uid, EUID: uid, User: fmt.Sprint("u", uid)}
}

func snapshot(load float64, procs ...*platform.Process) *platform.Snapshot {
	s := &platform.Snapshot{Host: platform.Host{Load1: load, NCPU: 2}, Users: map[uint32]*platform.UserStats{}}
	for _, p := range procs {
		s.Procs = append(s.Procs, p)
		if s.Users[p.UID] == nil {
			s.Users[p.UID] = &platform.UserStats{UID: p.UID, Name: p.User}
		}
		s.Users[p.UID].Procs++
	}
	return s
}

func TestReconcilePlacesAndCounts(t *testing.T) {
	r := newRig(t, testPolicy)
	outside := proc(100, 1, 1500, 10)    // started before guardd, in php-fpm's group
	inside := proc(101, 1, 1500, 11)     // already in its leaf
	setuidRoot := proc(102, 1, 1500, 12) // a setuid-root program: protected, kept
	setuidRoot.EUID = 0
	rootProc := proc(103, 1, 0, 13) // never touched
	r.where[100] = "/system.slice/php-fpm.service"
	r.where[101] = "/guardd-users/u1500/work"
	r.where[102] = "/system.slice/php-fpm.service"
	r.where[103] = "/"

	r.c.Observe(snapshot(5, outside, inside, setuidRoot, rootProc))
	want := enforce.Limits{CPUPercent: 100, MemoryBytes: 1 << 30, Pids: 300}
	if got := r.g.ensured[1500]; !equalLimits(got, want) {
		t.Errorf("limits %+v, want %+v", got, want)
	}
	if _, ok := r.g.ensured[0]; ok {
		t.Error("root got a group")
	}
	if kept, ok := r.g.placed[outside.ProcID]; !ok || kept {
		t.Errorf("the process outside its group: placed %v kept %v, want placed in work", ok, kept)
	}
	if kept, ok := r.g.placed[setuidRoot.ProcID]; !ok || !kept {
		t.Errorf("the setuid-root process: placed %v kept %v, want kept", ok, kept)
	}
	if _, ok := r.g.placed[inside.ProcID]; ok {
		t.Error("a process already in its leaf was moved again")
	}
	if _, ok := r.g.placed[rootProc.ProcID]; ok {
		t.Error("root's process was placed")
	}
	m := r.c.Snapshot()
	if m.PlacedStart != 2 || m.Escaped != 0 || m.Groups != 1 {
		t.Errorf("metrics after the first tick: %+v", m)
	}

	// Tick 2: nothing new is read again; a child of a placed process born
	// after it was placed inherits its group (no read); a new process of
	// the customer whose parent is outside (a root master's fresh worker
	// the event path missed) is read, placed and counted as escaped.
	r.reads = 0
	r.where[100] = "/guardd-users/u1500/work"
	child := proc(104, 101, 1500, ^uint64(0)-1)
	stray := proc(105, 103, 1500, ^uint64(0)-1)
	r.where[105] = "/system.slice/php-fpm.service"
	r.c.Observe(snapshot(5, outside, inside, setuidRoot, rootProc, child, stray))
	if r.reads != 1 {
		t.Errorf("tick 2 read %d /proc/PID/cgroup files, want 1 (the stray only)", r.reads)
	}
	if _, ok := r.g.placed[child.ProcID]; ok {
		t.Error("a child born in its parent's group was moved")
	}
	if _, ok := r.g.placed[stray.ProcID]; !ok {
		t.Error("the stray was not placed")
	}
	if m := r.c.Snapshot(); m.Escaped != 1 || m.Placed != 3 {
		t.Errorf("metrics after tick 2: %+v", m)
	}
	if r.g.ensures != 1 {
		t.Errorf("limits written %d times for unchanged limits, want 1", r.g.ensures)
	}

	// Tick 3: the host calms down: the burst raises cpu in place.
	r.c.Observe(snapshot(0.5, outside, inside))
	if got := r.g.ensured[1500].CPUPercent; got != 250 {
		t.Errorf("cpu under burst = %v, want 250", got)
	}
	if m := r.c.Snapshot(); m.BurstingNow != 1 {
		t.Errorf("bursting customers = %d, want 1", m.BurstingNow)
	}
	// Exited processes are forgotten.
	if len(r.c.placed) != 2 {
		t.Errorf("%d processes remembered, want 2", len(r.c.placed))
	}
}

// A refused placement (the process exited between the sample and the
// move) counts as outside now and is tried again at the next tick.
func TestPlaceFailureRetried(t *testing.T) {
	r := newRig(t, testPolicy)
	p := proc(200, 1, 1600, 10)
	r.where[200] = "/elsewhere"
	r.g.refuse[200] = true
	r.c.Observe(snapshot(5, p))
	if m := r.c.Snapshot(); m.PlaceFailed != 1 || m.Outside != 1 {
		t.Fatalf("metrics: %+v", m)
	}
	r.g.refuse[200] = false
	r.c.Observe(snapshot(5, p))
	if _, ok := r.g.placed[p.ProcID]; !ok {
		t.Error("not placed on the retry")
	}
	if m := r.c.Snapshot(); m.Outside != 0 {
		t.Errorf("outside now = %d, want 0", m.Outside)
	}
}

// Monitor mode changes nothing on the host.
func TestMonitorModePlacesNothing(t *testing.T) {
	r := newRig(t, "guardd {\n  mode = \"monitor\"\n}\n"+testPolicy)
	p := proc(300, 1, 1700, 10)
	r.where[300] = "/elsewhere"
	r.c.Observe(snapshot(5, p))
	if len(r.g.placed) != 0 || r.g.ensures != 0 {
		t.Errorf("monitor mode placed %d processes and wrote %d limits", len(r.g.placed), r.g.ensures)
	}
}

// A policy without cpu, memory or io limits opens no driver.
func TestNoIsolationWithoutLimits(t *testing.T) {
	r := newRig(t, `
class "customers" {
  uids = ["1000-59999"]
}
limits "customers" {
  class = "customers"
  procs = 300
}`)
	if r.c.driver != nil || r.g.set {
		t.Fatal("a driver was opened for a policy with procs caps only")
	}
	r.where[400] = "/elsewhere"
	r.c.Observe(snapshot(5, proc(400, 1, 1800, 10)))
	if len(r.g.placed) != 0 {
		t.Error("placed a process without isolation limits")
	}
}

func TestUsageRates(t *testing.T) {
	prev := platform.GroupStats{Avail: platform.StatCPUThrottled | platform.StatMemoryCurrent,
		CPUPeriods: 100, CPUThrottled: 10, MemoryHigh: 2, MemoryMax: 1, MemoryOOMKill: 0, PidsRefused: 5}
	cur := platform.GroupStats{Avail: platform.StatCPUThrottled | platform.StatMemoryCurrent | platform.StatCPUPressure,
		CPUPeriods: 200, CPUThrottled: 50, MemoryCurrent: 3 << 20, MemoryHigh: 5, MemoryMax: 2, MemoryOOMKill: 1, PidsRefused: 9,
		CPUPressure: 12.5}
	u := usage(&prev, &cur, 5*time.Second, true)
	if u.CPUThrottledPercent != 40 {
		t.Errorf("throttled = %v%%, want 40", u.CPUThrottledPercent)
	}
	if u.MemoryFaults != 5 { // 3 high + 1 max + 1 OOM kill
		t.Errorf("memory faults = %v, want 5", u.MemoryFaults)
	}
	if u.ProcsFaults != 4 || u.MemoryBytes != 3<<20 || u.CPUPressure != 12.5 || !u.PressureKnown {
		t.Errorf("usage = %+v", u)
	}
	// Without a previous reading, no rates (a first tick is not a fault).
	if u := usage(&platform.GroupStats{}, &cur, 0, false); u.MemoryFaults != 0 || u.CPUThrottledPercent != 0 {
		t.Errorf("first reading gave rates: %+v", u)
	}
	// A recreated group's counters start again: the new value is the delta.
	re := platform.GroupStats{CPUPeriods: 10, CPUThrottled: 5, PidsRefused: 1}
	if u := usage(&cur, &re, time.Second, true); u.CPUThrottledPercent != 50 || u.ProcsFaults != 1 {
		t.Errorf("after recreation: %+v", u)
	}
}

// The group's CPU replaces the per-process sum when every process of
// the customer was in place; a customer with a process found outside
// keeps the per-process figure.
func TestGroupCPUReplacesTheSum(t *testing.T) {
	r := newRig(t, testPolicy)
	in := proc(500, 1, 1900, 10)
	r.where[500] = "/guardd-users/u1900/work"
	r.stats["guardd-users/u1900"] = platform.GroupStats{Avail: platform.StatCPUUsage, CPUUsageUsec: 1_000_000}
	r.c.Observe(snapshot(5, in))
	r.clock = r.clock.Add(time.Second)
	r.stats["guardd-users/u1900"] = platform.GroupStats{Avail: platform.StatCPUUsage, CPUUsageUsec: 1_900_000} // 90 % of a core
	snap := snapshot(5, in)
	snap.Users[1900].CPUPercent = 3 // what live processes showed
	r.c.Observe(snap)
	if got := snap.Users[1900].CPUPercent; got != 90 {
		t.Errorf("user.cpu_percent = %v, want the group's 90", got)
	}
	// A stray outside the group: the group's figure is not all of it.
	stray := proc(501, 1, 1900, 11)
	r.where[501] = "/system.slice/cron.service"
	r.clock = r.clock.Add(time.Second)
	r.stats["guardd-users/u1900"] = platform.GroupStats{Avail: platform.StatCPUUsage, CPUUsageUsec: 2_800_000}
	snap = snapshot(5, in, stray)
	snap.Users[1900].CPUPercent = 3
	r.c.Observe(snap)
	if got := snap.Users[1900].CPUPercent; got != 3 {
		t.Errorf("with a stray, user.cpu_percent = %v, want the per-process 3", got)
	}
}

type fakeCPU struct{ usec *uint64 }

func (f fakeCPU) Read(s *platform.GroupStats) error {
	*s = platform.GroupStats{Avail: platform.StatCPUUsage, CPUUsageUsec: *f.usec}
	return nil
}
func (f fakeCPU) Close() error { return nil }

// The sampler's probe: unknown until a customer's group was read once
// and while a process of the customer is outside it; none while its CPU
// counter stands still; some when it moves.
func TestActivityProbe(t *testing.T) {
	r := newRig(t, testPolicy)
	var usec uint64 = 1000
	r.c.openCPU = func(*platform.CgroupLayout, string) (statsFiles, error) { return fakeCPU{&usec}, nil }
	p := proc(600, 1, 2000, 10)
	r.where[600] = "/guardd-users/u2000/work"
	if a := r.c.probe(2000); a != platform.ActivityUnknown {
		t.Fatalf("before any reconcile: %v, want unknown", a)
	}
	r.c.Observe(snapshot(5, p))
	if a := r.c.probe(2000); a != platform.ActivityUnknown {
		t.Fatalf("first reading: %v, want unknown (no baseline)", a)
	}
	if a := r.c.probe(2000); a != platform.ActivityNone {
		t.Fatalf("counter unchanged: %v, want none", a)
	}
	usec += 5
	if a := r.c.probe(2000); a != platform.ActivitySome {
		t.Fatalf("counter moved: %v, want some", a)
	}
	// A stray outside the group: its CPU is not in the counter.
	stray := proc(601, 1, 2000, 11)
	r.where[601] = "/elsewhere"
	r.g.refuse[601] = true
	r.c.Observe(snapshot(5, p, stray))
	if a := r.c.probe(2000); a != platform.ActivityUnknown {
		t.Fatalf("with a process outside the group: %v, want unknown", a)
	}
	if a := r.c.probe(1); a != platform.ActivityUnknown {
		t.Fatalf("a uid with no group: %v, want unknown", a)
	}
}

// TestSystemdWithoutControllers: under systemd, a cgroup2 tree with no
// controllers (a container whose host delegates none) still gets the
// groups (placement, freeze, kill; the limits as the scopes'
// properties); without systemd, or with v1 hierarchies, it gets none.
func TestSystemdWithoutControllers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		systemd bool
		v1      bool
		want    bool
	}{
		{"systemd", true, false, true},
		{"no systemd", false, false, false},
		{"systemd with v1", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(testPolicy)})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			g := &fakeGroups{ensured: map[uint32]enforce.Limits{}, placed: map[platform.ProcID]bool{}}
			var opened *platform.CgroupLayout
			c := &Isolation{open: func(l *platform.CgroupLayout, _ string, _ uint32) (enforce.GroupDriver, error) {
				opened = l
				return g, nil
			}, door: g}
			c.discover = func() (*platform.CgroupLayout, error) {
				l := &platform.CgroupLayout{Mode: platform.CgroupNone, V2: &platform.CgroupHierarchy{Version: 2, Mount: "/sys/fs/cgroup", Root: "/", Own: "/"}, V1: map[string]*platform.CgroupHierarchy{}}
				if tc.v1 {
					l.V1["name=x"] = &platform.CgroupHierarchy{Version: 1}
				}
				return l, nil
			}
			c.whereIs = func(int32, *platform.CgroupLayout) (string, error) { return "", platform.ErrGone }
			c.openStats = func(*platform.CgroupLayout, string) (statsFiles, error) { return nil, platform.ErrGone }
			c.blockDevs = func([]string) ([]platform.BlockDevice, error) { return nil, nil }
			c.systemd = func() bool { return tc.systemd }
			if err := c.Start(&fakeHost{pol: p, acc: platform.NewAccounts()}, p); err != nil {
				t.Fatal(err)
			}
			s := c.Snapshot()
			if got := s.Driver != ""; got != tc.want || g.set != tc.want {
				t.Fatalf("driver %q (door set %v), unavailable %q; want a driver: %v", s.Driver, g.set, s.Unavailable, tc.want)
			}
			if tc.want && (opened == nil || opened.Mode != platform.CgroupV2 || c.hasPids) {
				t.Errorf("opened with %+v (pids %v), want v2 mode and no pids limit", opened, c.hasPids)
			}
			if !tc.want && s.Unavailable == "" {
				t.Error("no reason given")
			}
		})
	}
}
