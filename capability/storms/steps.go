package storms

import (
	"fmt"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// userSignalStep handles kill_user, stop_user and resume_user. kill_user
// and stop_user spare what the policy protects (userSpare); kill_user of
// a user with nothing protectable, and resume_user, are one signal to
// every process of the user at once, through the enforcer's helper.
func (c *protectSeen) userSignalStep(sig string) capability.StepFunc {
	return func(h capability.Host, snap *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event) {
		ev := base
		ev.Signal = sig
		if m.Proc != nil {
			capability.FillProc(&ev, m.Proc) // what set it off
		}
		uid := m.User.UID
		gid := uid
		enf := h.Enforcer()
		if acc, ok := h.Accounts().LookupUID(uid); ok {
			gid = acc.GID
		}
		if why := h.Policy().ProtectedAccount(uid, m.User.Name, m.User.Groups); why != "" {
			ev.Outcome, ev.Reason = report.OutcomeSkipped, "protected: "+why
		} else {
			dry := m.Rule.Mode == policy.ModeMonitor
			// A customer in a group of its own: the group first. Its kill
			// and freeze reach every process in it at once, however fast
			// it forks, and its kept leaf (protected sessions) is spared;
			// the signals below then reach stragglers outside the group.
			var group enforce.Result
			if h.Isolation(uid).Grouped {
				switch sig {
				case "KILL":
					group = enf.KillGroup(uid, dry)
				case "STOP":
					group = enf.FreezeGroup(uid, dry)
				case "CONT":
					group = enf.ThawGroup(uid, dry)
				}
			}
			var res enforce.UserResult
			switch {
			case sig == "STOP" && (group.Outcome == enforce.Done || group.Outcome == enforce.WouldDo):
				// Frozen: nothing in the group can run or fork, and a
				// process placed there later (a straggler) freezes as it
				// enters. A SIGSTOP sweep now would wait for frozen
				// processes to show stopped, which they never do.
				res = enforce.UserResult{Outcome: group.Outcome, Reason: "group: " + group.Reason}
				group = enforce.Result{}
			case sig == "KILL" || sig == "STOP":
				spare, mayHave := c.userSpare(h, snap, uid)
				if sig == "KILL" && !mayHave {
					res = enf.KillUser(uid, gid, nil, dry) // the fast path: kill(-1) as the user
					break
				}
				r, run := enf.PrepareUserSweep(uid, gid, spare, sig == "KILL", dry)
				if run != nil {
					if group.Outcome != "" {
						inner := run
						run = func() enforce.UserResult { return withGroup(group, inner()) }
					}
					c.sweepOffLock(h, m, ev, run) // writes the audit line when done
					return
				}
				res = r
			default:
				res = enf.SignalUser(uid, gid, sig, dry)
			}
			if group.Outcome != "" {
				res = withGroup(group, res)
			}
			ev.Outcome, ev.Reason = res.Outcome, res.Reason
		}
		h.Write(&ev)
	}
}

// withGroup folds the group's act into the signals' result: the step
// did its work if either did (the signals often find nothing left after
// a group kill), and the reason says both.
func withGroup(group enforce.Result, res enforce.UserResult) enforce.UserResult {
	if group.Outcome == "" {
		return res
	}
	switch {
	case group.Outcome == res.Outcome:
	case group.Outcome == enforce.Done || group.Outcome == enforce.WouldDo:
		res.Outcome = group.Outcome
	}
	res.Reason = "group: " + group.Reason + "; signals: " + res.Reason
	return res
}

// reapStep handles reap: the parents of the zombies (the matched process
// if it has zombie children, its parent if it is a zombie; for a user
// rule, the parents of all the user's zombies) get SIGCHLD, and are ended
// if they do not reap in time, unless they belong to someone else or are
// protected, in which case the audit line reports them.
func reapStep(h capability.Host, snap *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event) {
	byPID := func(pid int32) *platform.Process {
		for _, p := range snap.Procs {
			if p.PID == pid {
				return p
			}
		}
		return nil
	}
	var parents []*platform.Process
	seen := map[int32]bool{}
	add := func(zombieOrParent *platform.Process) {
		target := zombieOrParent
		if target.State == 'Z' {
			target = byPID(target.PPID)
		}
		if target != nil && !seen[target.PID] {
			seen[target.PID] = true
			parents = append(parents, target)
		}
	}
	if m.Proc != nil {
		add(m.Proc)
	} else {
		for _, p := range snap.Procs {
			if p.UID == m.User.UID && p.State == 'Z' {
				add(p)
			}
		}
	}
	owner := m.User.UID
	// Check runs again from the enforcer's timer at the end of the grace,
	// while a reload may replace the running policy: it keeps the one it
	// was given.
	pol, acc, enf := h.Policy(), h.Accounts(), h.Enforcer()
	for _, parent := range parents {
		ev := base
		capability.FillProc(&ev, parent)
		tag := ev
		res := enf.Do(enforce.Action{
			Kind: enforce.ActReap, Target: parent.ProcID, Grace: st.Grace, Signal: "CHLD",
			DryRun: m.Rule.Mode == policy.ModeMonitor,
			Tag:    &tag,
			Check: func(fresh *platform.Process) string {
				if fresh.UID != owner {
					return fmt.Sprintf("the zombies' parent belongs to uid %d, not to their owner: reported only", fresh.UID)
				}
				if why := pol.ProtectedProcess(fresh, acc.Groups(fresh.UID)); why != "" {
					return "the zombies' parent is protected (" + why + "): reported only"
				}
				return ""
			},
		})
		if res.Proc != nil {
			capability.FillProc(&ev, res.Proc)
		}
		ev.Signal = "CHLD"
		ev.Outcome, ev.Reason = res.Outcome, res.Reason
		h.Write(&ev)
	}
}
