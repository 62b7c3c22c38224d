package main

import (
	"errors"
	"fmt"
	"github.com/guardd/guardd/capability"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

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
	componentBase
	d   *daemonState
	pol *policy.Policy

	hook       *enforce.ConnectHook // nil: no kernel refusal (no block, or unavailable)
	hookFailed string               // why the hook could not be opened, logged once per reason
	stamp      platform.AccountsStamp
}

// maxConnectLines bounds the refusal lines of one tick; the rest are
// summed up per uid.
const maxConnectLines = 200

func (g *connectGuard) Name() string { return "connect" }

func (g *connectGuard) Start(h capability.Host, p *policy.Policy) error {
	d := h.(*daemonState) // until this capability has its own package
	g.d, g.pol = d, p
	if len(p.Connects) > 0 {
		// The hook resolves classes of users and groups to uids now.
		if err := d.accounts.Refresh(); err != nil {
			d.log.Warn("cannot read the account files", "err", err)
		}
	}
	g.syncHook(p)
	return nil
}

// mode is the effective mode of a connect block: `guardd run --mode
// monitor` makes every block monitor, as it does every rule.
func (g *connectGuard) mode(c *policy.Connect) string {
	if g.d.opts.mode == policy.ModeMonitor {
		return policy.ModeMonitor
	}
	return c.Mode
}

// CheckPolicy refuses a policy the connect hook cannot hold.
func (g *connectGuard) CheckPolicy(p *policy.Policy) error {
	_, err := connectPolicy(p, nil, func(c *policy.Connect) string { return c.Mode })
	return err
}

// Validate refuses a policy the connect hook cannot hold.
func (g *connectGuard) Validate(p *policy.Policy) error {
	_, err := connectPolicy(p, g.d.accounts, g.mode)
	return err
}

func (g *connectGuard) Apply(p *policy.Policy) {
	g.pol = p
	g.syncHook(p)
}

// connectPolicy computes what the kernel's connect hook enforces: each
// block is one set, its allow patterns first (the first matching rule
// decides), then its deny patterns.
func connectPolicy(p *policy.Policy, accounts *platform.Accounts, mode func(*policy.Connect) string) (*enforce.ConnectPolicy, error) {
	cp := &enforce.ConnectPolicy{MinUID: max(p.MinUID, 1)}
	var idx policy.AccountIndex
	if accounts != nil {
		idx = accountIndex{accounts}
	}
	sets := map[*policy.Connect]int{}
	for _, span := range p.ConnectSpans(idx) {
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
	log := g.d.log
	if len(p.Connects) == 0 {
		if g.hook != nil {
			g.closeHook()
			log.Info("connect hook detached: no connect block any more")
		}
		return
	}
	if os.Getenv(noBPFEnv) != "" {
		g.hookUnavailable(noBPFEnv + " is set")
		return
	}
	cp, err := connectPolicy(p, g.d.accounts, g.mode)
	if err != nil {
		log.Error("connect hook not updated", "err", err)
		return
	}
	stamp := g.d.accounts.Stamp()
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
		g.hookFailed = ""
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
	if g.hookFailed == why {
		return
	}
	g.hookFailed = why
	attrs := []any{"why", why}
	if strings.Contains(why, syscall.EPERM.Error()) { // the sandbox's doing: say which setting
		attrs = append(attrs, "fix", probeFix("bpf", syscall.EPERM))
	}
	g.d.log.Warn("connect hook unavailable: connect blocks refuse nothing (connects are neither refused nor reported)", attrs...)
}

func (g *connectGuard) closeHook() {
	if g.hook == nil {
		return
	}
	g.writeRefusals(time.Now()) // what the kernel counted until now
	if err := g.hook.Close(); err != nil {
		g.d.log.Warn("connect hook: closing", "err", err)
	}
	g.hook = nil
}

// Tick journals the refusals the kernel counted since the last tick, and
// follows account changes (a new customer of a class named by user name).
func (g *connectGuard) Tick(snap *platform.Snapshot) {
	if g.hook == nil {
		return
	}
	if g.d.accounts.Stamp() != g.stamp {
		g.syncHook(g.pol)
	}
	if g.writeRefusals(snap.Time) {
		g.d.audit.Load().Sync()
	}
}

// writeRefusals writes one line per uid and destination, at most
// maxConnectLines; the rest are summed up per uid. It reports whether it
// wrote anything.
func (g *connectGuard) writeRefusals(now time.Time) bool {
	counts, err := g.hook.TakeCounts()
	if err != nil {
		g.d.log.Warn("connect hook: cannot read refusals", "err", err)
		return false
	}
	if len(counts) == 0 {
		return false
	}
	sort.Slice(counts, func(i, j int) bool { return counts[i].Boot < counts[j].Boot })
	host, _ := os.Hostname()
	unitemized := map[uint32]uint64{}
	for i := range counts {
		if i >= maxConnectLines {
			unitemized[counts[i].UID] += counts[i].Count
			continue
		}
		g.d.write(g.refusalEvent(now, host, &counts[i]))
	}
	for uid, n := range unitemized {
		g.d.write(&report.Event{Time: now, Host: host, Rule: "connect", Action: refuseConnectAction, Mode: policy.ModeEnforce,
			Outcome: report.OutcomeDone, UID: uid, User: g.d.accounts.Name(uid), Count: int(min(n, 1<<31-1)),
			Reason: fmt.Sprintf("%d more connects to denied destinations in one tick, not itemized", n)})
	}
	return true
}

// refuseConnectAction is the audit log's action for a connect() (or a UDP
// send) the connect hook refused.
const refuseConnectAction = "refuse-connect"

func (g *connectGuard) refusalEvent(now time.Time, host string, r *enforce.ConnectRefusals) *report.Event {
	n := int(min(r.Count, 1<<31-1))
	ev := &report.Event{
		Time: now, Host: host, Step: 1, Action: refuseConnectAction, Mode: policy.ModeEnforce, Outcome: report.OutcomeDone,
		PID: r.PID, UID: r.UID, User: g.d.accounts.Name(r.UID),
		Proto: r.Proto.String(), Addr: r.Addr.String(), Port: r.Port, Count: n,
	}
	name := "connect"
	if r.Set != nil {
		if c, ok := r.Set.Tag.(*policy.Connect); ok {
			ev.Rule, ev.RuleAt = c.Name, c.At()
			name = fmt.Sprintf("connect %q", c.Name)
		}
	}
	call := "connect() to " + r.Where()
	if r.Proto == platform.UDP {
		call = "connect() or send to " + r.Where()
	}
	ev.Reason = fmt.Sprintf("%s refused with EPERM: %s denies it", call, name)
	if !r.Refused {
		ev.Mode, ev.Outcome = policy.ModeMonitor, report.OutcomeWouldDo
		ev.Reason = fmt.Sprintf("would refuse %s with EPERM: %s denies it", call, name)
	}
	if r.Count > 1 {
		ev.Reason += fmt.Sprintf(" (%d times)", r.Count)
	}
	// The first process that tried is most likely still there: add its
	// executable, name and command line if the pid still names it.
	p, err := platform.ReadProcess(r.PID, g.d.accounts)
	switch {
	case err == nil && p.UID == r.UID && p.StartedBy(r.Boot):
		capability.FillProc(ev, p)
	case err == nil || errors.Is(err, platform.ErrGone):
		ev.Reason += " (the process ended before guardd could read it)"
	default:
		g.d.log.Debug("connect refusal: cannot read the process", "pid", r.PID, "err", err)
	}
	return ev
}

func (g *connectGuard) Stop() { g.closeHook() }
