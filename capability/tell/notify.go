package tell

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// Steps: notify.
func (t *teller) Steps() map[policy.StepKind]capability.StepFunc {
	return map[policy.StepKind]capability.StepFunc{StepNotify: t.notifyStep}
}

// notifyStep hands the customer mail about a match to the mailer: what
// the rule did to the process since the last notify, the values behind
// it, and the user's processes at this moment. The mailer decides, with
// flood control, whether it goes now or in the next digest; the loop
// never waits for it.
func (t *teller) notifyStep(h capability.Host, snap *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event) {
	ev := base
	if m.Proc != nil {
		capability.FillProc(&ev, m.Proc)
	}
	switch {
	case m.User == nil:
		ev.Outcome, ev.Reason = report.OutcomeSkipped, "no customer to mail: the rule is not about a user's processes"
	case t.mailer == nil || t.recipients == nil:
		ev.Outcome, ev.Reason = report.OutcomeFailed, "customer mail is not running (see the log)"
	default:
		n := t.notice(h, snap, m, st, base.Step-1)
		to, err := t.recipients.For(n.User, n.UID)
		iv := NotifyInterval(h.Policy(), &st)
		switch {
		case err != nil:
			ev.Outcome, ev.Reason = report.OutcomeFailed, "no address: "+err.Error()
		case m.Rule.Mode == policy.ModeMonitor:
			ev.Outcome = report.OutcomeWouldDo
			ev.Reason = fmt.Sprintf("would mail %s (template %s; at most one mail per %s)", strings.Join(to, ", "), t.templateName(n), iv)
		default:
			t.mailer.Offence(n)
			ev.Outcome = report.OutcomeDone
			ev.Reason = fmt.Sprintf("mail to %s (template %s; at most one per %s, the rest in a digest)", strings.Join(to, ", "), t.templateName(n), iv)
		}
	}
	h.Write(&ev)
}

// templateName names the template a notice will be written with.
func (t *teller) templateName(n *report.Notice) string {
	if cfg := t.mailerCfg.Load(); cfg != nil {
		if mt, err := cfg.Templates.Resolve(n.Template, n.Rule, cfg.Language); err == nil {
			return mt.Name + "." + mt.Lang
		}
	}
	return n.Template
}

var noticeSeq atomic.Uint64

// notice builds the notice of one notify step (index step of its rule).
func (t *teller) notice(h capability.Host, snap *platform.Snapshot, m *policy.Match, st policy.Step, step int) *report.Notice {
	r := m.Rule
	n := &report.Notice{
		ID:   fmt.Sprintf("%x-%d", snap.Time.UnixNano(), noticeSeq.Add(1)),
		Time: snap.Time, Host: t.host, Rule: r.Name, RuleAt: r.At(), Template: Notify(&st).Template,
		User: m.User.Name, UID: m.User.UID, Limit: r.When.Source, For: r.For, Values: m.Values(),
		Interval: NotifyInterval(h.Policy(), &st), MinOffences: NotifyMinOffences(h.Policy(), &st),
	}
	key := enforce.Key{Rule: r.Name, UID: m.User.UID}
	if m.Proc != nil {
		key.PID, key.StartTime = m.Proc.PID, m.Proc.StartTime
		p := processInfo(m.Proc)
		n.Process = &p
	}
	if since, ok := h.Ledger().Since(enforce.Key{Rule: r.Key, UID: key.UID, PID: key.PID, StartTime: key.StartTime}); ok {
		n.Since = since
	}
	n.Actions = t.actions.take(key)
	for _, s := range r.Steps[min(step+1, len(r.Steps)):] {
		if s.Kind == StepNotify || s.Kind == policy.StepReport {
			continue
		}
		n.Next = append(n.Next, report.NextStep{Action: string(s.Kind), After: s.After, Signal: s.Signal, Nice: s.Nice})
	}
	n.Processes, n.ProcessCount = t.notify.processes(snap, m.User.UID)
	return n
}

func processInfo(p *platform.Process) report.ProcessInfo {
	return report.ProcessInfo{PID: p.PID, PPID: p.PPID, Exe: p.Exe, Comm: p.Comm, Cmdline: p.Cmdline, State: string(rune(p.State)),
		Started: p.Started, Age: p.Age, CPUPercent: p.CPUPercent, RSSBytes: p.RSSBytes, Threads: p.Threads, Nice: p.Nice}
}

// noticeCache groups one snapshot's processes by uid, once per tick, for
// the evidence of every notice of that tick (a thousand notices must not
// scan the process table a thousand times).
type noticeCache struct {
	snap  *platform.Snapshot
	at    time.Time
	byUID map[uint32][]*platform.Process
}

func (c *noticeCache) processes(snap *platform.Snapshot, uid uint32) ([]report.ProcessInfo, int) {
	if c.snap != snap || !c.at.Equal(snap.Time) {
		c.snap, c.at = snap, snap.Time
		c.byUID = map[uint32][]*platform.Process{}
		for _, p := range snap.Procs {
			c.byUID[p.UID] = append(c.byUID[p.UID], p)
		}
		for _, ps := range c.byUID {
			sort.Slice(ps, func(i, j int) bool {
				if ps[i].CPUPercent != ps[j].CPUPercent {
					return ps[i].CPUPercent > ps[j].CPUPercent
				}
				return ps[i].PID < ps[j].PID
			})
		}
	}
	ps := c.byUID[uid]
	out := make([]report.ProcessInfo, 0, min(len(ps), report.MaxNoticeProcesses))
	for _, p := range ps[:min(len(ps), report.MaxNoticeProcesses)] {
		out = append(out, processInfo(p))
	}
	return out, len(ps)
}

// actionTracker keeps, per escalation, the actions journalled since its
// last notify, so a mail says what was done. Event feeds it from any
// goroutine (kill follow-ups come from timers).
type actionTracker struct {
	mu   sync.Mutex // guards the fields below
	m    map[enforce.Key]*trackedActions
	seen int
}

type trackedActions struct {
	list []report.ActionInfo
	last time.Time
}

// maxTrackedActions bounds each list; maxTracked the escalations kept
// (a few MiB at most: only rules with a notify step are tracked).
const (
	maxTrackedActions = 10
	maxTracked        = 20_000
	trackedFor        = 24 * time.Hour
)

func (a *actionTracker) record(ev *report.Event, scope policy.Scope) {
	key := enforce.Key{Rule: ev.Rule, UID: ev.UID}
	if scope == policy.ScopeProcess {
		key.PID, key.StartTime = ev.PID, ev.StartTime
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[enforce.Key]*trackedActions{}
	}
	e := a.m[key]
	if e == nil {
		if len(a.m) >= maxTracked {
			a.prune(ev.Time)
			for k := range a.m { // still full: make room, whatever goes
				if len(a.m) < maxTracked {
					break
				}
				delete(a.m, k)
			}
		}
		e = &trackedActions{}
		a.m[key] = e
	}
	if len(e.list) == maxTrackedActions {
		e.list = append(e.list[:0], e.list[1:]...)
	}
	e.list = append(e.list, report.ActionInfo{Time: ev.Time, Step: ev.Step, Action: ev.Action, Outcome: ev.Outcome,
		Reason: ev.Reason, Signal: ev.Signal, Nice: ev.Nice, PID: ev.PID})
	e.last = ev.Time
	if a.seen++; a.seen%4096 == 0 {
		a.prune(ev.Time)
	}
}

// prune forgets escalations quiet for a day (no notify asked for them).
func (a *actionTracker) prune(now time.Time) {
	for k, e := range a.m {
		if now.Sub(e.last) > trackedFor {
			delete(a.m, k)
		}
	}
}

func (a *actionTracker) take(key enforce.Key) []report.ActionInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.m[key]
	if e == nil {
		return nil
	}
	delete(a.m, key)
	return e.list
}
