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
// (enforce's group entry points and cgroup drivers: v2, v1). It
// owns no step; kill_user and stop_user use its Freeze and Kill where
// present.
//
// Protected processes of a customer (an sshd session, a root service's
// worker) live in the group's `kept` leaf: they count against the
// customer's limits but a freeze or kill of the customer spares them.
package isolation

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/prometheus/client_golang/prometheus"
)

// Base is the group under guardd's own group of each hierarchy that
// holds every customer's group (enforce/groups.go has the layout).
const Base = "guardd-users"

// door is what the capability asks of the enforcer (a fake in tests).
type door interface {
	SetGroups(d enforce.GroupDriver)
	EnsureGroup(uid uint32, l enforce.Limits, dry bool) enforce.Result
	PlaceInGroup(p platform.ProcID, uid uint32, kept, dry bool) enforce.Result
}

// limitsOf turns the policy's effective limits into the door's.
func limitsOf(l policy.UserLimits, devices []platform.BlockDevice) enforce.Limits {
	out := enforce.Limits{CPUPercent: uint32(min(l.CPUPercent, policy.MaxCPUPercent)), MemoryBytes: l.MemoryBytes, Pids: uint32(l.Procs)}
	if l.IOReadBPS > 0 || l.IOWriteBPS > 0 {
		for _, d := range devices {
			out.IO = append(out.IO, enforce.IOLimit{Major: d.Major, Minor: d.Minor, ReadBPS: l.IOReadBPS, WriteBPS: l.IOWriteBPS})
		}
	}
	return out
}

// Opener opens the group driver for this host's layout.
type Opener func(layout *platform.CgroupLayout, base string, minUID uint32) (enforce.GroupDriver, error)

// openDriver picks the driver. Under systemd on cgroup v2, systemd owns
// the groups (a scope per customer in guardd.slice): groups made below
// guardd's own would be guardd.service's, and `systemctl stop guardd`
// would kill every customer's processes with it. Elsewhere (no systemd,
// or systemd on a v1/hybrid hierarchy, which cannot delegate v1
// controllers), the cgroup filesystem under guardd's own groups.
func openDriver(layout *platform.CgroupLayout, base string, minUID uint32) (enforce.GroupDriver, error) {
	if layout.Mode == platform.CgroupV2 && platform.SystemdBooted() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, err := enforce.NewSystemdGroups(ctx, max(minUID, 1))
		if err != nil {
			return nil, fmt.Errorf("systemd runs this host, and customers' groups must be its scopes, but its API refused: %w", err)
		}
		return d, nil
	}
	return enforce.NewGroups(layout, base)
}

// Isolation is the capability.
type Isolation struct {
	capability.Base
	open Opener

	h      capability.Host
	log    *slog.Logger
	door   door
	layout *platform.CgroupLayout
	driver enforce.GroupDriver
	scopes bool // systemd's scopes hold the groups (else guardd's own cgroup tree)
	// statsLayout is layout with Own where the groups' paths start.
	statsLayout *platform.CgroupLayout
	devices     []platform.BlockDevice // where io limits apply
	why         string                 // why there are no groups (logged once)
	now         func() time.Time
	// The host's facts, replaced in tests.
	discover  func() (*platform.CgroupLayout, error)
	whereIs   func(pid int32, l *platform.CgroupLayout) (string, error)
	openStats func(l *platform.CgroupLayout, group string) (statsFiles, error)
	openCPU   func(l *platform.CgroupLayout, group string) (statsFiles, error)
	blockDevs func(paths []string) ([]platform.BlockDevice, error)
	systemd   func() bool // systemd is PID 1

	// mu guards what the event path (ProcEvent) shares with the tick.
	mu      sync.Mutex
	pol     *policy.Policy
	users   map[uint32]*customer
	placed  map[platform.ProcID]placedAs // processes known to be where they belong
	ticks   uint64
	metrics Metrics
	outside atomic.Int64
	polNow  atomic.Pointer[policy.Policy] // pol, for Isolation (no lock)
	hasPids bool                          // the layout has a pids controller
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
	applied  enforce.Limits
	ensured  bool
	failed   string // the last Ensure error, said once
	prev     platform.GroupStats
	prevTime time.Time
	seen     uint64
	files    statsFiles // the group's counter files, held open
	// For the sampler's activity probe: the group's CPU counter alone,
	// what it read last, and whether every process of the customer was
	// in place at the last reconcile.
	cpu      statsFiles
	cpuSeen  uint64
	cpuKnown bool
	whole    bool
}

// statsFiles reads one group's counters from files held open: a pread
// each, where opening them every tick cost 8 times as much (BENCHMARKS.md).
type statsFiles interface {
	Read(s *platform.GroupStats) error
	Close() error
}

// tickStats are the counters a tick turns into the user.* variables.
const tickStats = platform.StatCPUUsage | platform.StatCPUThrottled | platform.StatMemoryCurrent | platform.StatMemoryHigh | platform.StatMemoryMax |
	platform.StatMemoryOOMKill | platform.StatPidsRefused | platform.StatCPUPressure | platform.StatMemoryPressure | platform.StatIOPressure

func openGroupStats(l *platform.CgroupLayout, group string) (statsFiles, error) {
	// v1 counts OOM kills and refused forks in the leaf where they
	// happen: the leaves' counts are added.
	return platform.OpenGroupStats(l, group, tickStats, "work", "kept")
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
	// Blocks are per limits block (a customer counts for the first block
	// that applies to it): bounded by the policy, never per customer.
	Blocks map[string]BlockMetrics
}

// BlockMetrics are one limits block's customers and their faults.
type BlockMetrics struct {
	Customers    int     // with a group now
	Throttled    int     // customers whose CPU was throttled in the last tick
	MemoryFaults float64 // since start
	ProcsFaults  float64 // since start
}

// New makes the capability with the cgroup filesystem drivers (for the
// registry).
func New() capability.Capability { return &Isolation{open: openDriver} }

func (c *Isolation) Name() string { return "isolation" }

func (c *Isolation) Start(h capability.Host, p *policy.Policy) error {
	c.h, c.log, c.now = h, h.Log(), time.Now
	if c.discover == nil {
		c.discover, c.whereIs, c.blockDevs = platform.DiscoverCgroups, platform.ProcCgroupPath, platform.BlockDevicesOf
		c.openStats = openGroupStats
		c.openCPU = func(l *platform.CgroupLayout, group string) (statsFiles, error) {
			return platform.OpenGroupStats(l, group, platform.StatCPUUsage)
		}
	}
	if c.systemd == nil {
		c.systemd = platform.SystemdBooted
	}
	if c.door == nil {
		c.door = h.Enforcer()
	}
	c.users = map[uint32]*customer{}
	c.placed = map[platform.ProcID]placedAs{}
	c.pol = p
	c.polNow.Store(p)
	c.setUp(p)
	if c.active(p) {
		h.Wake() // the processes already running are placed at once, not a tick later
	}
	if s := h.Sampler(); s != nil && c.driver != nil {
		s.SetActivityProbe(c.probe)
	}
	return nil
}

// probe tells the sampler whether a customer's processes ran since it
// last asked: the group's CPU counter moved or not (one pread). Only for
// a customer all of whose processes were in the group at the last
// reconcile; anything else is read as usual.
func (c *Isolation) probe(uid uint32) platform.Activity {
	c.mu.Lock()
	defer c.mu.Unlock()
	cu := c.users[uid]
	if cu == nil || !cu.ensured || !cu.whole || !c.active(c.pol) {
		return platform.ActivityUnknown
	}
	if cu.cpu == nil {
		f, err := c.openCPU(c.statsLayout, c.statsGroup(uid))
		if err != nil {
			return platform.ActivityUnknown
		}
		cu.cpu = f
	}
	var s platform.GroupStats
	if err := cu.cpu.Read(&s); err != nil || !s.Has(platform.StatCPUUsage) {
		cu.cpu.Close()
		cu.cpu, cu.cpuKnown = nil, false
		return platform.ActivityUnknown
	}
	seen, known := cu.cpuSeen, cu.cpuKnown
	cu.cpuSeen, cu.cpuKnown = s.CPUUsageUsec, true
	switch {
	case !known:
		return platform.ActivityUnknown
	case s.CPUUsageUsec == seen:
		return platform.ActivityNone
	}
	return platform.ActivitySome
}

// setUp opens the driver the first time a policy asks for isolation.
func (c *Isolation) setUp(p *policy.Policy) {
	if c.driver != nil || c.why != "" || !p.Isolating() {
		return
	}
	layout, err := c.discover()
	if err == nil && layout.Mode == platform.CgroupNone && layout.V2 != nil && c.systemd() {
		// systemd's scopes live in guardd.slice, not below guardd's own
		// group: the controllers that count are the root's.
		layout = scopesLayout(layout)
	}
	if err == nil && layout.Mode == platform.CgroupNone && layout.V2 != nil && len(layout.V1) == 0 && c.systemd() {
		// systemd on a cgroup2 tree without controllers (a container
		// whose host delegates none): its scopes still hold a customer's
		// processes and freeze and kill them at once (cgroup.freeze and
		// cgroup.kill need no controller), and carry the limits as
		// properties, which the kernel enforces only where the
		// controllers are.
		l := *layout
		l.Mode = platform.CgroupV2
		layout = &l
		c.log.Warn("per-customer isolation without kernel limits: the cgroup2 tree has no cpu, memory or pids controller; customers' groups still hold, freeze and kill their processes", "cgroup", l.V2.Mount)
	}
	if err == nil && layout.Mode == platform.CgroupNone {
		err = fmt.Errorf("no cgroup hierarchy with the cpu, memory or pids controller")
	}
	var g enforce.GroupDriver
	if err == nil {
		g, err = c.open(layout, Base, p.MinUID)
	}
	if err == nil && layout.Placement() == nil {
		err = fmt.Errorf("no hierarchy to place processes in (mode %s)", layout.Mode)
	}
	if err != nil {
		c.why = err.Error()
		c.log.Warn("per-customer isolation unavailable: limits blocks' cpu, memory and io limits are not applied (procs caps still are)", "err", err)
		return
	}
	c.layout, c.driver = layout, g
	c.scopes = g.Name() == "systemd"
	if c.scopes {
		// The scopes are not below guardd's own group: counters are read
		// from the hierarchy's root.
		v2 := *layout.V2
		v2.Own = v2.Root
		c.statsLayout = &platform.CgroupLayout{Mode: layout.Mode, V2: &v2}
	} else {
		c.statsLayout = layout
	}
	c.hasPids = layout.Mode == platform.CgroupV2 && layout.V2.Has("pids") || layout.Mode == platform.CgroupV1 && layout.V1["pids"] != nil
	c.door.SetGroups(g)
	devs, derr := c.blockDevs(customerDataPaths)
	c.devices = devs
	c.log.Info("per-customer isolation", "driver", g.Name(), "mode", layout.Mode, "io_devices", len(devs))
	if derr != nil || len(devs) == 0 {
		c.log.Info("io limits apply to no device: the customers' data is on no block device guardd can limit (an overlay, a network filesystem)", "paths", customerDataPaths, "err", derr)
	}
}

// scopesLayout is l with the controllers of the v2 root, when it has
// some of guardd's: under systemd the groups are its scopes in
// guardd.slice, which systemd gives the root's controllers, whatever
// guardd's own group has (a service without accounting, or a group of
// it with processes, has none: seen with guardd started by a test in a
// service, under systemd 252). l otherwise.
func scopesLayout(l *platform.CgroupLayout) *platform.CgroupLayout {
	b, err := os.ReadFile(filepath.Join(l.V2.Path(l.V2.Root), "cgroup.controllers"))
	if err != nil {
		return l
	}
	v2 := *l.V2
	v2.Controllers = strings.Fields(string(b))
	slices.Sort(v2.Controllers)
	if !slices.ContainsFunc(v2.Controllers, func(c string) bool { return slices.Contains(platform.CgroupControllers, c) }) {
		return l
	}
	return &platform.CgroupLayout{Mode: platform.CgroupV2, V1: l.V1, V2: &v2}
}

func (c *Isolation) Apply(p *policy.Policy) {
	c.mu.Lock()
	c.pol = p
	c.polNow.Store(p)
	for _, u := range c.users {
		u.ensured = false // limits are re-derived at the next tick, in place
	}
	c.mu.Unlock()
	c.setUp(p)
}

func (c *Isolation) Stop() {
	c.mu.Lock()
	for _, cu := range c.users {
		if cu.files != nil {
			cu.files.Close()
		}
		if cu.cpu != nil {
			cu.cpu.Close()
		}
	}
	c.mu.Unlock()
	if c.driver != nil {
		c.driver.Close()
	}
}

// customerDataPaths are where a shared host keeps what customers read
// and write: io limits apply to the block devices under them.
var customerDataPaths = []string{"/home", "/var/www", "/tmp"}

// Leaf is where a process of uid belongs, as /proc/PID/cgroup shows it in
// the placement hierarchy.
func (c *Isolation) leaf(uid uint32, kept bool) string {
	name := "work"
	if kept {
		name = "kept"
	}
	if c.scopes {
		return path.Join(c.layout.V2.Root, enforce.GuarddSlice, enforce.ScopeName(uid), name)
	}
	return path.Join(c.layout.Placement().Own, Base, "u"+strconv.FormatUint(uint64(uid), 10), name)
}

// statsGroup is uid's group relative to statsLayout's own group.
func (c *Isolation) statsGroup(uid uint32) string {
	if c.scopes {
		return path.Join(enforce.GuarddSlice, enforce.ScopeName(uid))
	}
	return Base + "/u" + strconv.FormatUint(uint64(uid), 10)
}

// Isolation says how uid is isolated (capability.Isolator): grouped when
// a limits block with cpu, memory or io applies to it and isolation runs.
func (c *Isolation) Isolation(uid uint32) capability.Isolation {
	p := c.polNow.Load()
	if !c.active(p) || uid < p.MinUID {
		return capability.Isolation{}
	}
	acc := c.h.Accounts()
	lim := p.LimitsFor(uid, acc.Name(uid), acc.Groups(uid), nil)
	if !lim.Any() {
		return capability.Isolation{}
	}
	return capability.Isolation{Grouped: true, PidsLimited: lim.Procs > 0 && c.hasPids}
}

// Collectors are the capability's metrics (capability.MetricsSource):
// host-wide, never per customer.
func (c *Isolation) Collectors() []prometheus.Collector {
	return []prometheus.Collector{metricsCollector{c}}
}

type metricsCollector struct{ c *Isolation }

var (
	descPlaced         = prometheus.NewDesc("guardd_cgroup_placed_total", "Processes of customers moved into their own group, by when: at their uid change (event), at the first reconcile after start (start), at a later reconcile (reconcile: the event path missed them).", []string{"when"}, nil)
	descEscaped        = prometheus.NewDesc("guardd_cgroup_escaped_total", "Processes of isolated customers found outside their group by a reconcile after start and moved back (goal: 0).", nil, nil)
	descOutside        = prometheus.NewDesc("guardd_cgroup_outside_processes", "Processes of isolated customers outside their group right now: those the last reconcile could not move (goal: 0).", nil, nil)
	descFailed         = prometheus.NewDesc("guardd_cgroup_place_failures_total", "Moves into a customer's group that failed.", nil, nil)
	descGroups         = prometheus.NewDesc("guardd_cgroup_groups", "Customers with a group of their own now.", nil, nil)
	descBurst          = prometheus.NewDesc("guardd_cgroup_bursting_customers", "Customers whose limits a burst block raises now.", nil, nil)
	descBlockCustomers = prometheus.NewDesc("guardd_limits_customers", "Customers with a group of their own, by the limits block that applies to them (the first, where several do).", []string{"limits"}, nil)
	descBlockThrottled = prometheus.NewDesc("guardd_limits_cpu_throttled_customers", "Customers whose CPU their limit held back in the last tick, by limits block.", []string{"limits"}, nil)
	descBlockFaults    = prometheus.NewDesc("guardd_limits_faults_total", "Limit faults of the customers of a limits block since guardd started: memory (high, max, OOM kills in the group), procs (forks refused).", []string{"limits", "kind"}, nil)
	descUp             = prometheus.NewDesc("guardd_cgroup_isolation_up", "1 when per-customer isolation runs (the driver in a label), 0 when the policy asks for it and the host cannot.", []string{"driver"}, nil)
)

func (m metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPlaced, descEscaped, descOutside, descFailed, descGroups, descBurst, descUp, descBlockCustomers, descBlockThrottled, descBlockFaults} {
		ch <- d
	}
}

func (m metricsCollector) Collect(ch chan<- prometheus.Metric) {
	s := m.c.Snapshot()
	p := m.c.polNow.Load()
	if p == nil || !p.Isolating() {
		return // a policy without isolation limits: no series
	}
	up := 1.0
	if s.Driver == "" {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, s.Driver)
	ch <- prometheus.MustNewConstMetric(descPlaced, prometheus.CounterValue, float64(s.PlacedEvent), "event")
	ch <- prometheus.MustNewConstMetric(descPlaced, prometheus.CounterValue, float64(s.PlacedStart), "start")
	ch <- prometheus.MustNewConstMetric(descPlaced, prometheus.CounterValue, float64(s.Placed-s.PlacedEvent-s.PlacedStart), "reconcile")
	ch <- prometheus.MustNewConstMetric(descEscaped, prometheus.CounterValue, float64(s.Escaped))
	ch <- prometheus.MustNewConstMetric(descOutside, prometheus.GaugeValue, float64(s.Outside))
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(s.PlaceFailed))
	ch <- prometheus.MustNewConstMetric(descGroups, prometheus.GaugeValue, float64(s.Groups))
	ch <- prometheus.MustNewConstMetric(descBurst, prometheus.GaugeValue, float64(s.BurstingNow))
	for name, b := range s.Blocks {
		if p.Limit(name) == nil {
			continue // a block a reload removed: its series go
		}
		ch <- prometheus.MustNewConstMetric(descBlockCustomers, prometheus.GaugeValue, float64(b.Customers), name)
		ch <- prometheus.MustNewConstMetric(descBlockThrottled, prometheus.GaugeValue, float64(b.Throttled), name)
		ch <- prometheus.MustNewConstMetric(descBlockFaults, prometheus.CounterValue, b.MemoryFaults, name, "memory")
		ch <- prometheus.MustNewConstMetric(descBlockFaults, prometheus.CounterValue, b.ProcsFaults, name, "procs")
	}
}

// Snapshot returns the counters.
func (c *Isolation) Snapshot() Metrics {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.metrics
	m.Blocks = make(map[string]BlockMetrics, len(c.metrics.Blocks))
	for k, v := range c.metrics.Blocks {
		m.Blocks[k] = v
	}
	m.Outside = c.outside.Load()
	if c.driver != nil {
		m.Driver = c.driver.Name()
	}
	m.Unavailable = c.why
	return m
}

// active reports whether isolation acts under p: a driver, and a policy
// not in monitor mode (monitor changes nothing on the host, like the
// procs caps).
func (c *Isolation) active(p *policy.Policy) bool {
	return c.driver != nil && p != nil && p.Isolating() && p.Mode != policy.ModeMonitor
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
	blockOf := map[uint32]string{}
	bursting := 0
	for uid, u := range snap.Users {
		lim := p.LimitsFor(uid, u.Name, u.Groups, env)
		if !lim.Any() {
			continue
		}
		if len(lim.Bursting) > 0 {
			bursting++
		}
		blockOf[uid] = lim.Blocks[0]
		cu := c.users[uid]
		if cu == nil {
			cu = &customer{}
			c.users[uid] = cu
		}
		cu.seen = c.ticks
		want := limitsOf(lim, c.devices)
		if !cu.ensured || !equalLimits(want, cu.applied) {
			if r := c.door.EnsureGroup(uid, want, false); r.Outcome != enforce.Done {
				if cu.failed != r.Reason {
					c.log.Warn("cannot set a customer's group limits", "uid", uid, "user", u.Name, "outcome", r.Outcome, "reason", r.Reason)
				}
				cu.failed = r.Reason
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
	strays := map[uint32]bool{} // customers with a process outside their group now
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
		if at == c.leaf(pr.UID, kept) {
			c.placed[pr.ProcID] = placedAs{kept: kept, since: platform.BootTicks(), seen: c.ticks}
			continue
		}
		if !c.movedBetweenLeaves(at, pr.UID) {
			strays[pr.UID] = true // outside for some of the tick: the group's CPU is not all of it
		}
		if r := c.door.PlaceInGroup(pr.ProcID, pr.UID, kept, false); r.Outcome != enforce.Done {
			if r.Outcome == enforce.Failed {
				c.metrics.PlaceFailed++
				outside++
				c.log.Debug("cannot place a process in its customer's group", "pid", pr.PID, "uid", pr.UID, "reason", r.Reason)
			}
			continue // skipped: gone, or not the customer's any more
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
	if c.metrics.Blocks == nil {
		c.metrics.Blocks = map[string]BlockMetrics{}
	}
	for name, b := range c.metrics.Blocks { // gauges start again; totals stay
		b.Customers, b.Throttled = 0, 0
		c.metrics.Blocks[name] = b
	}
	for uid, cu := range c.users {
		cu.whole = !strays[uid]
		if cu.seen != c.ticks {
			if cu.files != nil {
				cu.files.Close()
			}
			if cu.cpu != nil {
				cu.cpu.Close()
			}
			delete(c.users, uid) // no process left: its group is collected or idle
			continue
		}
		groups++
		u := snap.Users[uid]
		if cu.files == nil {
			f, err := c.openStats(c.statsLayout, c.statsGroup(uid))
			if err != nil {
				continue
			}
			cu.files = f
		}
		var s platform.GroupStats
		if err := cu.files.Read(&s); err != nil {
			cu.files.Close() // the group was removed and made again: reopen
			cu.files = nil
			continue
		}
		now := c.now()
		u.Group = usage(&cu.prev, &s, now.Sub(cu.prevTime), !cu.prevTime.IsZero())
		cu.prev, cu.prevTime = s, now
		// The group's CPU is exact, processes that came and went between
		// two samples included (a customer hopping across short-lived
		// processes shows in no per-process rate): it is the customer's
		// CPU when every process of the customer was in place all tick.
		if u.Group.CPUPercent >= 0 && !strays[uid] {
			u.CPUPercent = u.Group.CPUPercent
		}
		if name := blockOf[uid]; name != "" {
			b := c.metrics.Blocks[name]
			b.Customers++
			if u.Group.CPUThrottledPercent > 0 {
				b.Throttled++
			}
			b.MemoryFaults += u.Group.MemoryFaults
			b.ProcsFaults += u.Group.ProcsFaults
			c.metrics.Blocks[name] = b
		}
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
	return at == c.leaf(uid, true) || at == c.leaf(uid, false)
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
	name, groups := acc.Name(ev.UID), acc.Groups(ev.UID)
	lim := p.LimitsFor(ev.UID, name, groups, nil)
	if !lim.Any() {
		return
	}
	cu := c.users[ev.UID]
	if cu == nil || !cu.ensured {
		if cu == nil {
			cu = &customer{seen: c.ticks}
			c.users[ev.UID] = cu
		}
		want := limitsOf(lim, c.devices) // without bursts: the tick applies those
		if r := c.door.EnsureGroup(ev.UID, want, false); r.Outcome != enforce.Done {
			return
		}
		cu.applied, cu.ensured = want, true
		c.metrics.LimitChanges++
	}
	// The door re-reads the process (identity, uid, floor) before the
	// move; protection needs the sampler's provenance, so an event puts
	// the process in work, and the tick moves a protected one to kept.
	var st platform.Stat
	if platform.ReadStat(ev.TGID, &st) != nil {
		return
	}
	id := platform.ProcID{PID: ev.TGID, StartTime: st.StartTime}
	if r := c.door.PlaceInGroup(id, ev.UID, false, false); r.Outcome != enforce.Done {
		if r.Outcome == enforce.Failed {
			c.metrics.PlaceFailed++
		}
		return
	}
	c.placed[id] = placedAs{since: platform.BootTicks(), seen: c.ticks}
	c.metrics.Placed++
	c.metrics.PlacedEvent++
}

// equalLimits compares two door limits.
func equalLimits(a, b enforce.Limits) bool {
	return a.CPUPercent == b.CPUPercent && a.MemoryBytes == b.MemoryBytes && a.Pids == b.Pids && slices.Equal(a.IO, b.IO)
}

// usage turns two readings of a group's counters dt apart into the
// user.* variables (rates over the tick; PSI as the kernel gives it).
func usage(prev, cur *platform.GroupStats, dt time.Duration, havePrev bool) platform.UserGroupUsage {
	u := platform.UserGroupUsage{InGroup: true, CPUPercent: -1}
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
	if prev.Has(platform.StatCPUUsage) && cur.Has(platform.StatCPUUsage) {
		u.CPUPercent = d(prev.CPUUsageUsec, cur.CPUUsageUsec) / float64(dt.Microseconds()) * 100
	}
	if periods := d(prev.CPUPeriods, cur.CPUPeriods); periods > 0 {
		u.CPUThrottledPercent = min(100, d(prev.CPUThrottled, cur.CPUThrottled)/periods*100)
	}
	u.MemoryFaults = d(prev.MemoryHigh, cur.MemoryHigh) + d(prev.MemoryMax, cur.MemoryMax) + d(prev.MemoryOOMKill, cur.MemoryOOMKill)
	u.ProcsFaults = d(prev.PidsRefused, cur.PidsRefused)
	if prev.Has(platform.StatIOPressure) && cur.Has(platform.StatIOPressure) {
		u.IOThrottledSeconds = d(prev.IOFullStallUsec, cur.IOFullStallUsec) / 1e6
	}
	return u
}
