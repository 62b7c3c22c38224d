// Package isolation is the per-customer isolation capability: every
// process of a customer whose class has cpu, memory or io limits (a
// `limits` block, policy/isolation.go) lives in that customer's own kernel
// group, and the group carries the limits, so the kernel throttles a CPU
// hog, reclaims and OOM-kills inside the customer's group only, and
// refuses forks beyond `procs` — whatever started the process (php-fpm,
// cron, su, sshd, suexec).
//
// It observes: the customer's processes (placing those outside their
// group: at a uid-change event, within milliseconds, and at every tick's
// reconcile, counting stragglers), and each group's counters once per
// tick, in O(customers), as the user.* fault and pressure variables
// (platform.UserGroupUsage). It acts only through a Groups door
// (enforce's cgroup drivers: systemd scopes, cgroup v2, cgroup v1). It
// owns no step; kill_user and stop_user use its Freeze and Kill where
// present.
//
// Protected processes of a customer (an sshd session, a root service's
// worker) live in the group's `kept` leaf: they count against the
// customer's limits but a freeze or kill of the customer spares them.
package isolation

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// Groups is the door for per-customer groups (enforce's drivers).
type Groups interface {
	// Name names the driver ("systemd", "cgroup2", "cgroup1").
	Name() string
	// Ensure creates the customer's group if missing and sets its limits
	// (in place when it exists).
	Ensure(uid uint32, lim Limits) error
	// Place moves a process (identity re-checked right before) into the
	// customer's group: the kept leaf when kept, else the work leaf.
	Place(uid uint32, p platform.ProcID, kept bool) error
	// Leaf is where a process of uid belongs, as /proc/PID/cgroup shows
	// it in the layout's placement hierarchy.
	Leaf(uid uint32, kept bool) string
	// StatsGroup is the customer's group relative to guardd's own group
	// of each hierarchy, for platform.GroupStatsReader.
	StatsGroup(uid uint32) string
	// Close releases the driver; the groups stay (their processes run on).
	Close() error
}

// Limits are one customer's kernel limits; zero means none.
type Limits struct {
	CPUPercent            float64
	MemoryHigh, MemoryMax uint64
	TasksMax              int
	IOReadBPS, IOWriteBPS uint64
}

// limitsOf turns the policy's effective limits into the door's.
func limitsOf(l policy.UserLimits) Limits {
	out := Limits{CPUPercent: l.CPUPercent, MemoryMax: l.MemoryBytes, TasksMax: l.Procs, IOReadBPS: l.IOReadBPS, IOWriteBPS: l.IOWriteBPS}
	if l.MemoryBytes > 0 {
		out.MemoryHigh = l.MemoryBytes / 100 * policy.MemoryHighPercent
	}
	return out
}

// Opener picks and opens the driver for this host; nil Groups with a
// nil error means isolation is not available here (the reason is logged
// by the opener's caller from the error, or "none").
type Opener func(layout *platform.CgroupLayout, minUID uint32) (Groups, error)

// Isolation is the capability.
type Isolation struct {
	capability.Base
	open Opener

	h      capability.Host
	log    *slog.Logger
	layout *platform.CgroupLayout
	groups Groups
	why    string // why there are no groups (logged once)
	stats  platform.GroupStatsReader
	now    func() time.Time
	// The host's facts, replaced in tests.
	discover  func() (*platform.CgroupLayout, error)
	whereIs   func(pid int32, l *platform.CgroupLayout) (string, error)
	readStats func(l *platform.CgroupLayout, group string, s *platform.GroupStats) error
	readProc  func(pid int32, acc *platform.Accounts) (*platform.Process, error)

	// mu guards what the event path (ProcEvent) shares with the tick.
	mu      sync.Mutex
	pol     *policy.Policy
	users   map[uint32]*customer
	placed  map[platform.ProcID]placedAs // processes known to be where they belong
	ticks   uint64
	metrics Metrics
	outside atomic.Int64
}

// placedAs is where a process was found or put, since when (boot
// ticks: its children started later were born there), and the tick it
// was last seen (for pruning).
type placedAs struct {
	kept  bool
	since uint64
	seen  uint64
}

// customer is one customer's group as guardd last set and read it.
type customer struct {
	applied  Limits
	ensured  bool
	failed   string // the last Ensure error, said once
	prev     platform.GroupStats
	prevTime time.Time
	seen     uint64
}

// Metrics are the capability's counters, for the metrics page.
type Metrics struct {
	Placed       uint64 // processes moved into their group (any path)
	PlacedEvent  uint64 // ... of those, at their uid change
	PlacedStart  uint64 // ... found outside at the first reconcile after start
	Escaped      uint64 // found outside at a later reconcile: the event path missed them
	PlaceFailed  uint64
	Groups       int   // customers with a group
	Outside      int64 // processes of isolated customers outside their group now
	Driver       string
	Unavailable  string // why isolation does not run, "" when it does
	BurstingNow  int    // customers whose limits are raised by a burst now
	LimitChanges uint64 // limits written to groups (creation included)
}

// New makes the capability with the host's drivers (for the registry).
func New(open Opener) capability.Factory {
	return func() capability.Capability { return &Isolation{open: open} }
}

func (c *Isolation) Name() string { return "isolation" }

func (c *Isolation) Start(h capability.Host, p *policy.Policy) error {
	c.h, c.log, c.now = h, h.Log(), time.Now
	if c.discover == nil {
		c.discover, c.whereIs, c.readStats, c.readProc = platform.DiscoverCgroups, platform.ProcCgroupPath, c.stats.Read, platform.ReadProcess
	}
	c.users = map[uint32]*customer{}
	c.placed = map[platform.ProcID]placedAs{}
	c.pol = p
	c.setUp(p)
	return nil
}

// setUp opens the driver the first time a policy asks for isolation.
func (c *Isolation) setUp(p *policy.Policy) {
	if c.groups != nil || c.why != "" || !p.Isolating() {
		return
	}
	layout, err := c.discover()
	if err == nil && layout.Mode == platform.CgroupNone {
		err = fmt.Errorf("no cgroup hierarchy with the cpu, memory or pids controller")
	}
	var g Groups
	if err == nil {
		g, err = c.open(layout, p.MinUID)
	}
	if err == nil && g == nil {
		err = fmt.Errorf("no driver for this host's cgroups (mode %s)", layout.Mode)
	}
	if err != nil {
		c.why = err.Error()
		c.log.Warn("per-customer isolation unavailable: limits blocks' cpu, memory and io limits are not applied (procs caps still are)", "err", err)
		return
	}
	c.layout, c.groups = layout, g
	c.log.Info("per-customer isolation", "driver", g.Name(), "mode", layout.Mode)
}

func (c *Isolation) Apply(p *policy.Policy) {
	c.mu.Lock()
	c.pol = p
	for _, u := range c.users {
		u.ensured = false // limits are re-derived at the next tick, in place
	}
	c.mu.Unlock()
	c.setUp(p)
}

func (c *Isolation) Stop() {
	if c.groups != nil {
		c.groups.Close()
	}
}

// Snapshot returns the counters.
func (c *Isolation) Snapshot() Metrics {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.metrics
	m.Outside = c.outside.Load()
	if c.groups != nil {
		m.Driver = c.groups.Name()
	}
	m.Unavailable = c.why
	return m
}

// active reports whether isolation acts under p: a driver, and a policy
// not in monitor mode (monitor changes nothing on the host, like the
// procs caps).
func (c *Isolation) active(p *policy.Policy) bool {
	return c.groups != nil && p != nil && p.Isolating() && p.Mode != policy.ModeMonitor
}

// Observe runs the tick's reconcile: limits per customer (bursts
// included), every process of an isolated customer in its leaf, and the
// groups' counters into snap's users.
func (c *Isolation) Observe(snap *platform.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pol
	if !c.active(p) {
		c.outside.Store(0)
		return
	}
	c.ticks++
	first := c.ticks == 1
	env := &policy.Env{Host: &snap.Host}
	limited := map[uint32]bool{}
	bursting := 0
	for uid, u := range snap.Users {
		lim := p.LimitsFor(uid, u.Name, u.Groups, env)
		if !lim.Any() {
			continue
		}
		if len(lim.Bursting) > 0 {
			bursting++
		}
		cu := c.users[uid]
		if cu == nil {
			cu = &customer{}
			c.users[uid] = cu
		}
		cu.seen = c.ticks
		want := limitsOf(lim)
		if !cu.ensured || want != cu.applied {
			if err := c.groups.Ensure(uid, want); err != nil {
				if cu.failed != err.Error() {
					c.log.Warn("cannot set a customer's group limits", "uid", uid, "user", u.Name, "err", err)
				}
				cu.failed = err.Error()
				continue
			}
			cu.applied, cu.ensured, cu.failed = want, true, ""
			c.metrics.LimitChanges++
		}
		limited[uid] = true
	}
	c.metrics.BurstingNow = bursting

	// Placement: children are born in their parent's group, so a process
	// whose parent is known to be in the right leaf of the same customer
	// needs no read; anything else is read once, then remembered.
	var outside int64
	mine := make(map[int32]*platform.Process, len(snap.Procs)/4)
	for _, pr := range snap.Procs {
		if limited[pr.UID] {
			mine[pr.PID] = pr
		}
	}
	for _, pr := range mine {
		kept := p.ProtectedProcess(pr, c.h.Accounts().Groups(pr.UID)) != ""
		if pl, ok := c.placed[pr.ProcID]; ok && pl.kept == kept {
			pl.seen = c.ticks
			c.placed[pr.ProcID] = pl
			continue
		}
		if since, ok := c.inherits(mine, pr, kept); ok {
			c.placed[pr.ProcID] = placedAs{kept: kept, since: since, seen: c.ticks}
			continue
		}
		at, err := c.whereIs(pr.PID, c.layout)
		if err != nil {
			continue // gone
		}
		if at == c.groups.Leaf(pr.UID, kept) {
			c.placed[pr.ProcID] = placedAs{kept: kept, since: platform.BootTicks(), seen: c.ticks}
			continue
		}
		if err := c.groups.Place(pr.UID, pr.ProcID, kept); err != nil {
			c.metrics.PlaceFailed++
			outside++
			c.log.Debug("cannot place a process in its customer's group", "pid", pr.PID, "uid", pr.UID, "err", err)
			continue
		}
		c.placed[pr.ProcID] = placedAs{kept: kept, since: platform.BootTicks(), seen: c.ticks}
		c.metrics.Placed++
		if first {
			c.metrics.PlacedStart++
		} else if !c.movedBetweenLeaves(at, pr.UID) {
			c.metrics.Escaped++
		}
	}
	c.outside.Store(outside)
	for id, pl := range c.placed {
		if pl.seen != c.ticks {
			delete(c.placed, id)
		}
	}

	// Counters, once per customer.
	groups := 0
	for uid, cu := range c.users {
		if cu.seen != c.ticks {
			delete(c.users, uid) // no process left: its group is collected or idle
			continue
		}
		groups++
		u := snap.Users[uid]
		var s platform.GroupStats
		if err := c.readStats(c.layout, c.groups.StatsGroup(uid), &s); err != nil {
			continue
		}
		now := c.now()
		u.Group = usage(&cu.prev, &s, now.Sub(cu.prevTime), !cu.prevTime.IsZero())
		cu.prev, cu.prevTime = s, now
	}
	c.metrics.Groups = groups
}

// inherits reports whether pr was born where it belongs: its parent is a
// process of the same customer (mine: the isolated customers' processes
// by pid) that was already in the same leaf when pr started (a fork
// copies the parent's group, and a move and a fork exclude each other in
// the kernel). It returns since for pr's own children.
func (c *Isolation) inherits(mine map[int32]*platform.Process, pr *platform.Process, kept bool) (uint64, bool) {
	q := mine[pr.PPID]
	if q == nil || q.UID != pr.UID {
		return 0, false
	}
	pl, ok := c.placed[q.ProcID]
	if !ok || pl.kept != kept || pr.StartTime <= pl.since {
		return 0, false
	}
	return pr.StartTime, true
}

// movedBetweenLeaves: the process was in the customer's other leaf (a
// shell under a kept sshd session is born kept and moves to work): not
// an escape.
func (c *Isolation) movedBetweenLeaves(at string, uid uint32) bool {
	return at == c.groups.Leaf(uid, true) || at == c.groups.Leaf(uid, false)
}

// ProcEvent places a process that just became a customer's (a root
// process's setuid: php-fpm workers, cron, su, sshd sessions) at once,
// from the event reader's goroutine.
func (c *Isolation) ProcEvent(ev platform.ProcEvent) {
	if ev.Kind != platform.EventUID || !ev.IsProcess() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pol
	if !c.active(p) || ev.UID < p.MinUID {
		return
	}
	acc := c.h.Accounts()
	proc, err := c.readProc(ev.TGID, acc)
	if err != nil || proc.UID != ev.UID {
		return // gone, or changed again: the reconcile sees where it ends
	}
	groups := acc.Groups(proc.UID)
	lim := p.LimitsFor(proc.UID, proc.User, groups, nil)
	if !lim.Any() {
		return
	}
	cu := c.users[proc.UID]
	if cu == nil || !cu.ensured {
		if cu == nil {
			cu = &customer{seen: c.ticks}
			c.users[proc.UID] = cu
		}
		want := limitsOf(lim) // without bursts: the tick applies those
		if err := c.groups.Ensure(proc.UID, want); err != nil {
			return
		}
		cu.applied, cu.ensured = want, true
		c.metrics.LimitChanges++
	}
	kept := p.ProtectedProcess(proc, groups) != ""
	if err := c.groups.Place(proc.UID, proc.ProcID, kept); err != nil {
		c.metrics.PlaceFailed++
		return
	}
	c.placed[proc.ProcID] = placedAs{kept: kept, since: platform.BootTicks(), seen: c.ticks}
	c.metrics.Placed++
	c.metrics.PlacedEvent++
}

// usage turns two readings of a group's counters dt apart into the
// user.* variables (rates over the tick; PSI as the kernel gives it).
func usage(prev, cur *platform.GroupStats, dt time.Duration, havePrev bool) platform.UserGroupUsage {
	u := platform.UserGroupUsage{InGroup: true}
	if cur.Has(platform.StatMemoryCurrent) {
		u.MemoryBytes = cur.MemoryCurrent
	}
	if cur.Has(platform.StatCPUPressure) {
		u.CPUPressure, u.PressureKnown = cur.CPUPressure, true
	}
	if cur.Has(platform.StatMemoryPressure) {
		u.MemoryPressure = cur.MemoryPressure
	}
	if cur.Has(platform.StatIOPressure) {
		u.IOPressure = cur.IOPressure
	}
	if !havePrev || dt <= 0 {
		return u
	}
	d := func(a, b uint64) float64 {
		if b < a { // the group was recreated: its counters started again
			return float64(b)
		}
		return float64(b - a)
	}
	if periods := d(prev.CPUPeriods, cur.CPUPeriods); periods > 0 {
		u.CPUThrottledPercent = min(100, d(prev.CPUThrottled, cur.CPUThrottled)/periods*100)
	}
	u.MemoryFaults = d(prev.MemoryHigh, cur.MemoryHigh) + d(prev.MemoryMax, cur.MemoryMax) + d(prev.MemoryOOMKill, cur.MemoryOOMKill)
	u.ProcsFaults = d(prev.PidsRefused, cur.PidsRefused)
	return u
}
