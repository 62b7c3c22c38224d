// Package outbound is the connect-block capability: a cgroup BPF program
// on the connect4/6 and sendmsg4/6 hooks of the cgroup v2 root
// (enforce.ConnectHook) refuses a governed customer's connect() (and
// unconnected UDP send) to a destination its connect block denies. It
// observes nothing per tick but the kernel's refusal counts, which it
// journals as refuse-connect lines; it owns no step and no variable. The
// connect block's schema is the capability's own (schema.go); what
// it shares with the listeners capability (uid maps, fallbacks, refusal
// lines) is in capability/internal/socketrules.
package outbound

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/capability/internal/socketrules"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// connectGuard makes connect blocks real: a cgroup BPF program on the
// connect4/6 and sendmsg4/6 hooks of the cgroup v2 root refuses a
// governed customer's connect() (and unconnected UDP send) to a denied
// destination with EPERM, or in monitor mode lets it through (the hook
// itself is the dry-run point: its set says whether to refuse). The
// kernel counts refusals per uid and destination; every tick guardd takes
// the counts and writes one audit line per user and destination with the
// count, so a spam script trying thousands of times costs one line.
type connectGuard struct {
	capability.Base
	h   capability.Host
	pol *policy.Policy

	hook     *enforce.ConnectHook // nil: no kernel refusal (no block, or unavailable)
	fallback socketrules.Fallback
	stamp    platform.AccountsStamp
}

// New makes the capability (for the registry).
func New() capability.Capability { return &connectGuard{} }

func (g *connectGuard) Name() string { return "connect" }

func (g *connectGuard) Start(h capability.Host, p *policy.Policy) error {
	g.h, g.pol = h, p
	if len(Connects(p)) > 0 {
		socketrules.RefreshAccounts(h)
	}
	g.syncHook(p)
	return nil
}

// mode is the effective mode of a connect block.
func (g *connectGuard) mode(c *Connect) string {
	return socketrules.Mode(g.h.ModeOverride(), c.Mode)
}

// CheckPolicy refuses a policy the connect hook cannot hold.
func (g *connectGuard) CheckPolicy(p *policy.Policy) error {
	_, err := connectPolicy(p, nil, func(c *Connect) string { return c.Mode })
	return err
}

// Validate refuses a policy the connect hook cannot hold.
func (g *connectGuard) Validate(p *policy.Policy) error {
	_, err := connectPolicy(p, g.h.Accounts(), g.mode)
	return err
}

func (g *connectGuard) Apply(p *policy.Policy) {
	g.pol = p
	g.syncHook(p)
}

// connectPolicy computes what the kernel's connect hook enforces: each
// block is one set, its allow patterns first (the first matching rule
// decides), then its deny patterns.
func connectPolicy(p *policy.Policy, accounts *platform.Accounts, mode func(*Connect) string) (*enforce.ConnectPolicy, error) {
	cp := &enforce.ConnectPolicy{MinUID: max(p.MinUID, 1)}
	sets := map[*Connect]int{}
	for _, span := range ConnectSpans(p, socketrules.Index(accounts)) {
		c := span.Connect
		i, ok := sets[c]
		if !ok {
			set := enforce.ConnectSet{Refuse: mode(c) == policy.ModeEnforce, Tag: c}
			for _, a := range c.Allow {
				set.Rules = append(set.Rules, enforce.ConnectRule{Prefix: a.Prefix, PortLo: a.PortLo, PortHi: a.PortHi})
			}
			for _, d := range c.Deny {
				set.Rules = append(set.Rules, enforce.ConnectRule{Deny: true, Prefix: d.Prefix, PortLo: d.PortLo, PortHi: d.PortHi})
			}
			i = len(cp.Sets)
			sets[c] = i
			cp.Sets = append(cp.Sets, set)
		}
		cp.UIDs = append(cp.UIDs, enforce.BindUIDs{Lo: span.Lo, Hi: span.Hi, Set: i})
	}
	if err := cp.Validate(); err != nil {
		return nil, fmt.Errorf("connect blocks: %w", err)
	}
	return cp, nil
}

// syncHook opens, updates or closes the connect hook to match p.
func (g *connectGuard) syncHook(p *policy.Policy) {
	log := g.h.Log()
	if len(Connects(p)) == 0 {
		if g.hook != nil {
			g.closeHook()
			log.Info("connect hook detached: no connect block any more")
		}
		return
	}
	if os.Getenv(socketrules.NoBPFEnv) != "" {
		g.hookUnavailable(socketrules.NoBPFEnv + " is set")
		return
	}
	cp, err := connectPolicy(p, g.h.Accounts(), g.mode)
	if err != nil {
		log.Error("connect hook not updated", "err", err)
		return
	}
	stamp := g.h.Accounts().Stamp()
	if g.hook == nil {
		root, err := platform.FindCgroup2Root()
		if err == nil {
			g.hook, err = enforce.OpenConnectHook(root)
		}
		if err != nil {
			g.hook = nil
			g.hookUnavailable(err.Error())
			return
		}
		g.fallback.Available()
		what := "monitor: denied connects are reported, not refused"
		for _, s := range cp.Sets {
			if s.Refuse {
				what = "denied connects fail with EPERM"
			}
		}
		log.Info("connect hook attached: "+what, "cgroup", root, "uid_ranges", len(cp.UIDs), "sets", len(cp.Sets))
	}
	if err := g.hook.Update(cp); err != nil {
		log.Error("connect hook not updated", "err", err)
		return
	}
	g.stamp = stamp
}

func (g *connectGuard) hookUnavailable(why string) {
	g.fallback.Unavailable(g.h, "connect hook unavailable: connect blocks refuse nothing (connects are neither refused nor reported)", why)
}

func (g *connectGuard) closeHook() {
	if g.hook == nil {
		return
	}
	g.writeRefusals(time.Now()) // what the kernel counted until now
	if err := g.hook.Close(); err != nil {
		g.h.Log().Warn("connect hook: closing", "err", err)
	}
	g.hook = nil
}

// Tick journals the refusals the kernel counted since the last tick, and
// follows account changes (a new customer of a class named by user name).
func (g *connectGuard) Tick(snap *platform.Snapshot) {
	if g.hook == nil {
		return
	}
	if g.h.Accounts().Stamp() != g.stamp {
		g.syncHook(g.pol)
	}
	if g.writeRefusals(snap.Time) {
		g.h.SyncAudit()
	}
}

// writeRefusals writes one line per uid and destination, at most
// socketrules.MaxLines; the rest are summed up per uid. It reports whether it
// wrote anything.
func (g *connectGuard) writeRefusals(now time.Time) bool {
	counts, err := g.hook.TakeCounts()
	if err != nil {
		g.h.Log().Warn("connect hook: cannot read refusals", "err", err)
		return false
	}
	if len(counts) == 0 {
		return false
	}
	sort.Slice(counts, func(i, j int) bool { return counts[i].Boot < counts[j].Boot })
	host, _ := os.Hostname()
	unitemized := map[uint32]uint64{}
	for i := range counts {
		if i >= socketrules.MaxLines {
			unitemized[counts[i].UID] += counts[i].Count
			continue
		}
		g.h.Write(g.refusalEvent(now, host, &counts[i]))
	}
	socketrules.WriteUnitemized(g.h, now, host, "connect", refuseConnectAction, unitemized, "connects to denied destinations")
	return true
}

// refuseConnectAction is the audit log's action for a connect() (or a UDP
// send) the connect hook refused.
const refuseConnectAction = "refuse-connect"

func (g *connectGuard) refusalEvent(now time.Time, host string, r *enforce.ConnectRefusals) *report.Event {
	n := int(min(r.Count, 1<<31-1))
	ev := &report.Event{
		Time: now, Host: host, Step: 1, Action: refuseConnectAction, Mode: policy.ModeEnforce, Outcome: report.OutcomeDone,
		PID: r.PID, UID: r.UID, User: g.h.Accounts().Name(r.UID),
		Proto: r.Proto.String(), Addr: r.Addr.String(), Port: r.Port, Count: n,
	}
	name := "connect"
	if r.Set != nil {
		if c, ok := r.Set.Tag.(*Connect); ok {
			ev.Rule, ev.RuleAt = c.Name, c.At()
			name = fmt.Sprintf("connect %q", c.Name)
		}
	}
	call := "connect() to " + r.Where()
	if r.Proto == platform.UDP {
		call = "connect() or send to " + r.Where()
	}
	socketrules.SayRefused(ev, call, name, "denies it", r.Refused, r.Count)
	// The first process that tried is most likely still there.
	socketrules.FillRefuser(g.h, ev, r.PID, r.UID, r.Boot, "connect refusal")
	return ev
}

func (g *connectGuard) Stop() { g.closeHook() }
