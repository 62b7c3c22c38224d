package main

import (
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// The user-rules fast path: a capability that counts users' processes
// from process events (capability.UserCounter: the fork-storm observer,
// capability/storms) wakes it with Host.WakeUsers.

// userTick is the fast path, run beside the loop when a user forks hard:
// the user-scope rules whose steps act on the user as a whole (kill_user,
// stop_user, report, ...) are evaluated at once on the last sample's
// per-user facts, with process counts and fork rates from events as of
// now. A user with no process at the last sample (a fork bomb's first
// second) is included. Rules with per-process steps wait for the full
// tick, which knows the processes.
func (d *daemonState) userTick(now time.Time) {
	var counter capability.UserCounter
	for _, c := range d.caps {
		if uc, ok := c.(capability.UserCounter); ok {
			counter = uc
		}
	}
	d.decideMu.Lock()
	if d.userBase == nil || counter == nil {
		d.decideMu.Unlock()
		return
	}
	snap := platform.Snapshot{Time: now, Host: d.hostBase, Users: make(map[uint32]*platform.UserStats, len(d.userBase))}
	counter.Users(now, func(uid uint32, live int32, forks float64) {
		u, ok := d.userBase[uid]
		if !ok {
			u = platform.UserStats{UID: uid, Name: d.accounts.Name(uid), Groups: d.accounts.Groups(uid)}
		}
		u.Procs = live + u.Zombies
		u.ForksPerSec = forks
		snap.Users[uid] = &u
	})
	n := d.decide(&snap, d.eval.EvaluateUsers, d.isWholeUserRule)
	if n > 0 {
		d.snapshotLedger(true)
	}
	d.decideMu.Unlock()
	if n > 0 {
		d.persistSoon(true) // beside the fast path: the disk never delays a decision
	}
}

// isWholeUserRule reports whether a rule is a user-scope rule whose steps
// all act on the user as a whole: those the fast path may decide.
func (d *daemonState) isWholeUserRule(key string) bool {
	r := d.pol.RuleByKey(key)
	return r != nil && r.Scope == policy.ScopeUser && r.WholeUser()
}
