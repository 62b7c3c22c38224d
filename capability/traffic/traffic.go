// Package traffic is the traffic-per-customer capability: the kernel's
// per-uid byte counters (enforce.TrafficHook, on the cgroup v2 root)
// become user.tx_bytes_per_sec and user.rx_bytes_per_sec, one sock_diag
// dump per tick user.connections, the connect hook's totals
// user.connect_refusals; and the egress_bps of limits blocks is written
// to the hook for the uids it applies to, and released when it no
// longer does (reload, protect, a policy without it).
package traffic

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// noBPFEnv, set to anything, keeps guardd's BPF hooks out (as for the
// bind and connect hooks).
const noBPFEnv = "GUARDD_NO_BPF"

// Traffic is the capability.
type Traffic struct {
	capability.Base
	h   capability.Host
	log *slog.Logger

	mu      sync.Mutex // guards the fields below (Observe and Apply)
	pol     *policy.Policy
	hook    *enforce.TrafficHook
	conns   *platform.ConnectionCounter
	prev    map[uint32]enforce.TrafficCounts
	cur     map[uint32]enforce.TrafficCounts
	prevAt  time.Time // monotonic clock of prev
	open    map[uint32]int32
	refPrev map[uint32]uint64
	refCur  map[uint32]uint64
	known   map[uint32]bool // uids seen last tick: the candidates for egress limits
	limits  map[uint32]enforce.TrafficLimit

	warned map[string]bool // warnings given once
}

// New makes the capability (for the registry).
func New() capability.Capability { return &Traffic{} }

func (c *Traffic) Name() string { return "traffic" }

func (c *Traffic) Start(h capability.Host, p *policy.Policy) error {
	c.h, c.log, c.pol = h, h.Log(), p
	c.prev, c.cur = map[uint32]enforce.TrafficCounts{}, map[uint32]enforce.TrafficCounts{}
	c.open = map[uint32]int32{}
	c.refPrev, c.refCur = map[uint32]uint64{}, map[uint32]uint64{}
	c.known, c.limits = map[uint32]bool{}, map[uint32]enforce.TrafficLimit{}
	c.warned = map[string]bool{}
	if cc, err := platform.NewConnectionCounter(); err == nil {
		c.conns = cc
	} else {
		c.warnOnce("conns", "cannot count connections: user.connections stays 0", "err", err)
	}
	c.openHook()
	return nil
}

// openHook attaches the kernel counters; without them the traffic
// variables read 0 and egress_bps is not enforced, which guardd says.
func (c *Traffic) openHook() {
	var err error
	switch {
	case os.Getenv(noBPFEnv) != "":
		err = errorString(noBPFEnv + " is set")
	default:
		var root string
		if root, err = platform.FindCgroup2Root(); err == nil {
			c.hook, err = enforce.OpenTrafficHook(root)
		}
	}
	if err != nil {
		c.hook = nil
		attrs := []any{"why", err.Error()}
		if strings.Contains(err.Error(), syscall.EPERM.Error()) {
			attrs = append(attrs, "fix", "allow the bpf() system call and CAP_BPF/CAP_NET_ADMIN for guardd")
		}
		c.warnOnce("hook", "traffic hook unavailable: user.tx_bytes_per_sec and user.rx_bytes_per_sec read 0, egress_bps limits are not enforced", attrs...)
		return
	}
	if err := c.hook.SetMinUID(c.pol.MinUID); err != nil {
		c.log.Warn("traffic hook", "err", err)
	}
	c.prevAt = time.Now()
	c.log.Info("traffic hook attached: bytes and packets counted per uid", "min_uid", c.pol.MinUID)
}

type errorString string

func (e errorString) Error() string { return string(e) }

func (c *Traffic) warnOnce(key, msg string, attrs ...any) {
	if c.warned[key] {
		return
	}
	c.warned[key] = true
	c.log.Warn(msg, attrs...)
}

// Apply follows a reload: the new min_uid at once, and the egress limits
// of the uids seen last tick under the new policy (added, changed and
// released now, not a tick later).
func (c *Traffic) Apply(p *policy.Policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pol = p
	if c.hook == nil {
		return
	}
	if err := c.hook.SetMinUID(p.MinUID); err != nil {
		c.log.Warn("traffic hook", "err", err)
	}
	c.syncLimits()
}

// Observe reads the kernel's counters, the connections and the connect
// hook's refusals into snap's users, then brings the egress limits in
// line with the policy for the uids it saw.
func (c *Traffic) Observe(snap *platform.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pol
	user := func(uid uint32) *platform.UserStats {
		u := snap.Users[uid]
		if u == nil && uid >= p.MinUID {
			a := c.h.Accounts()
			u = &platform.UserStats{UID: uid, Name: a.Name(uid), Groups: a.Groups(uid)}
			snap.Users[uid] = u
		}
		return u
	}
	clear(c.known)
	if c.hook != nil {
		now := time.Now()
		if err := c.hook.Read(c.cur); err != nil {
			c.warnOnce("read", "traffic hook: cannot read the counters", "err", err)
		} else {
			dt := now.Sub(c.prevAt)
			for uid, cur := range c.cur {
				prev, seen := c.prev[uid]
				if !seen {
					// First seen: its counts began since the last read
					// (or at load), all of them in the last tick.
					prev = enforce.TrafficCounts{}
				}
				tx, rx := enforce.TrafficRates(prev, cur, dt)
				if tx == 0 && rx == 0 {
					continue
				}
				if u := user(uid); u != nil {
					u.TxBytesPerSec, u.RxBytesPerSec = tx, rx
				}
			}
			c.prev, c.cur = c.cur, c.prev
			c.prevAt = now
			if c.hook.Full() {
				c.warnOnce("full", "traffic hook: the counts map is full: uids not yet counted are not counted", "uids", enforce.MaxTrafficUIDs)
			}
		}
		for uid := range c.prev {
			c.known[uid] = true
		}
	}
	if c.conns != nil {
		if err := c.conns.Count(c.open); err != nil {
			c.warnOnce("count", "cannot count connections", "err", err)
		}
		for uid, n := range c.open {
			if uid >= p.MinUID {
				if u := user(uid); u != nil {
					u.Connections = n
				}
			}
		}
	}
	enforce.ConnectRefusalTotals(c.refCur)
	for uid, n := range c.refCur {
		if d := n - c.refPrev[uid]; d > 0 && n >= c.refPrev[uid] {
			if u := user(uid); u != nil {
				u.ConnectRefusals = int64(min(d, 1<<62))
			}
		}
	}
	c.refPrev, c.refCur = c.refCur, c.refPrev
	for uid := range snap.Users {
		c.known[uid] = true
	}
	c.syncLimits()
}

// syncLimits writes the egress limits the policy gives the known uids
// (none in monitor mode: monitor changes nothing on the host).
func (c *Traffic) syncLimits() {
	if c.hook == nil {
		return
	}
	p := c.pol
	want := map[uint32]enforce.TrafficLimit{}
	if p.Policing() && p.Mode != policy.ModeMonitor && c.h.ModeOverride() != policy.ModeMonitor {
		a := c.h.Accounts()
		for uid := range c.known {
			if uid < p.MinUID || uid == 0 {
				continue // the floor: never system accounts
			}
			lim := p.LimitsFor(uid, a.Name(uid), a.Groups(uid), nil)
			if lim.EgressBPS > 0 {
				want[uid] = enforce.TrafficLimit{BytesPerSec: lim.EgressBPS}
			}
		}
	}
	changed := len(want) != len(c.limits)
	for uid, l := range want {
		if c.limits[uid] != l {
			changed = true
			c.log.Info("egress limit applied", "uid", uid, "user", c.h.Accounts().Name(uid), "bytes_per_sec", l.BytesPerSec)
		}
	}
	for uid := range c.limits {
		if _, ok := want[uid]; !ok {
			c.log.Info("egress limit released", "uid", uid, "user", c.h.Accounts().Name(uid))
		}
	}
	if !changed {
		return
	}
	if err := c.hook.SetLimits(want); err != nil {
		c.log.Warn("traffic hook: egress limits", "err", err)
		return
	}
	c.limits = want
}

// Stop detaches the hook: every egress limit goes with it.
func (c *Traffic) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hook != nil {
		c.hook.Close()
		c.hook = nil
	}
	if c.conns != nil {
		c.conns.Close()
		c.conns = nil
	}
}
