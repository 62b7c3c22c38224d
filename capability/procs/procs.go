// Package procs is the capability that acts on single processes: the
// renice, kill, stop and report steps of the CPU-hog, long-runner and
// every other per-process rule, and of user rules that act on each of the
// user's processes.
package procs

import (
	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// Procs carries out the per-process steps.
type Procs struct{ capability.Base }

// New makes the capability (for the registry).
func New() capability.Capability { return &Procs{} }

func (*Procs) Name() string { return "processes" }

// Steps: renice, kill, stop, report.
func (*Procs) Steps() map[policy.StepKind]capability.StepFunc {
	return map[policy.StepKind]capability.StepFunc{
		policy.StepRenice: step(enforce.ActRenice),
		policy.StepKill:   step(enforce.ActKill),
		policy.StepStop:   step(enforce.ActStop),
		policy.StepReport: step(enforce.ActReport),
	}
}

// step handles a step that acts on processes through the enforcer: on
// the matching process, or, for a user-scope rule, on each of the user's
// processes (a report is written once for the user).
func step(action string) capability.StepFunc {
	return func(h capability.Host, snap *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event) {
		if m.Proc != nil {
			actOn(h, m.Proc, m, st, action, base)
			return
		}
		if action == enforce.ActReport {
			ev := base
			ev.Outcome = report.OutcomeDone
			if m.Rule.Mode == policy.ModeMonitor {
				ev.Outcome = report.OutcomeWouldDo
			}
			h.Write(&ev)
			return
		}
		// The user's protected processes (an sshd session, say) and guardd
		// itself are left out here rather than logged as skipped one by one.
		pol, enf := h.Policy(), h.Enforcer()
		for _, p := range snap.Procs {
			if p.UID == m.User.UID && !enf.Exempt(p.PID) && pol.ProtectedProcess(p, m.User.Groups) == "" {
				actOn(h, p, m, st, action, base)
			}
		}
	}
}

func actOn(h capability.Host, p *platform.Process, m *policy.Match, st policy.Step, action string, base report.Event) {
	r, pol, accounts := m.Rule, h.Policy(), h.Accounts()
	observed := *p // the sampled rates, to re-check the condition with fresh identity facts
	a := enforce.Action{
		Kind: action, Target: p.ProcID, Nice: st.Nice, Signal: st.Signal, Grace: st.Grace,
		DryRun: r.Mode == policy.ModeMonitor,
		Check: func(fresh *platform.Process) string {
			groups := accounts.Groups(fresh.UID)
			if why := pol.ProtectedProcess(fresh, groups); why != "" {
				return "protected: " + why
			}
			if !r.Class.Contains(fresh.UID, fresh.User, groups) {
				return "no longer in class " + r.Class.Name
			}
			f := *fresh
			f.CPUPercent = observed.CPUPercent // a rate cannot be re-read instantly
			// Nor the listeners, from this tick's sock_diag dump.
			f.ListenPorts = observed.ListenPorts
			f.ForbiddenListens, f.ForbiddenListenBlock = observed.ForbiddenListens, observed.ForbiddenListenBlock
			// Nor can a lock wait, measured across ticks (read this tick).
			f.LocksHeld, f.LockWait, f.LockBlocking, f.LockBlockingFor = observed.LocksHeld, observed.LockWait, observed.LockBlocking, observed.LockBlockingFor
			f.LockBlockingOthers, f.LockBlockingOthersFor, f.LockForeign, f.LockForeignFor = observed.LockBlockingOthers, observed.LockBlockingOthersFor, observed.LockForeign, observed.LockForeignFor
			if f.FDs < 0 {
				f.FDs = observed.FDs
			}
			if !r.When.Eval(&policy.Env{Proc: &f, User: m.User, Host: m.Host}) {
				return "condition no longer holds"
			}
			return ""
		},
	}
	ev := base
	capability.FillProc(&ev, p)
	tag := ev // the follow-up's own copy: ev changes below while a grace timer may read it
	a.Tag = &tag
	res := h.Enforcer().Do(a)
	if res.Proc != nil {
		capability.FillProc(&ev, res.Proc)
	}
	// An Evidencer may have said why in base (a listener's address).
	ev.Outcome, ev.Reason = res.Outcome, res.Reason
	if base.Reason != "" && res.Reason != "" {
		ev.Reason = base.Reason + ": " + res.Reason
	} else if base.Reason != "" {
		ev.Reason = base.Reason
	}
	h.Write(&ev)
}
