package policy

import (
	"fmt"

	"github.com/guardd/guardd/platform"
)

// Match is a rule whose condition holds for a subject in one sample.
type Match struct {
	Rule *Rule
	Proc *platform.Process   // the process, for ScopeProcess rules; nil for ScopeUser
	User *platform.UserStats // the process's user, or the user of a ScopeUser rule; nil for ScopeFilesystem
	Host *platform.Host
	FS   *platform.Filesystem // the filesystem of a ScopeFilesystem rule; nil otherwise
}

// Values returns the evidence: the values the condition read.
func (m *Match) Values() map[string]any {
	return m.Rule.When.Values(&Env{Proc: m.Proc, User: m.User, Host: m.Host, FS: m.FS})
}

// ProtectedAccount says why an account is never acted on, or "" when it
// may be. uid 0 and uids below min_uid are protected whatever the policy
// says.
func (p *Policy) ProtectedAccount(uid uint32, user string, groups []string) string {
	switch {
	case uid == 0:
		return "uid 0"
	case uid < p.MinUID:
		return fmt.Sprintf("system uid (below min_uid %d)", p.MinUID)
	case p.Protect.Contains(uid, user, groups):
		return "protected account"
	}
	return ""
}

// ProtectedProcess says why a process is never acted on, or "" when it may
// be: its account, pid 1, a root effective uid (a setuid program run by a
// customer), or a protected executable it runs as a protected service
// started it (policy/protect.go).
func (p *Policy) ProtectedProcess(proc *platform.Process, groups []string) string {
	if why := p.ProtectedAccount(proc.UID, proc.User, groups); why != "" {
		return why
	}
	why, exe := p.protectedProcess(proc)
	if exe.protected() {
		return exe.protects()
	}
	return why
}

// protectedProcess is ProtectedProcess after the account checks, without
// allocating: Evaluate asks it for every process on every tick, and on a
// host full of sshd and dovecot sessions the reason string cost an
// allocation each time.
func (p *Policy) protectedProcess(proc *platform.Process) (why string, exe exeVerdict) {
	switch {
	case proc.PID == 1:
		return "pid 1", exeVerdict{}
	case proc.Kernel:
		return "kernel thread", exeVerdict{}
	case proc.EUID == 0 || proc.EUID < p.MinUID:
		return "runs with a system effective uid", exeVerdict{}
	}
	return "", p.exeProtection(proc)
}

// ClassesOf returns the classes an account belongs to.
func (p *Policy) ClassesOf(uid uint32, user string, groups []string) []*Class {
	var out []*Class
	for _, c := range p.Classes {
		if c.Contains(uid, user, groups) {
			out = append(out, c)
		}
	}
	return out
}

// Evaluator evaluates one policy sample after sample. It caches per-uid
// facts for the duration of one call, so class membership and account
// protection cost one lookup per process, not one per rule.
type Evaluator struct {
	Policy *Policy
	// Exempt reports processes that never match: guardd itself and its
	// ancestors. It may be nil.
	Exempt func(pid int32) bool

	uids map[uint32]uidFacts
	m    Match
}

type uidFacts struct {
	classes   uint64 // bit per class
	protected bool
}

// NewEvaluator returns an evaluator for p.
func NewEvaluator(p *Policy, exempt func(pid int32) bool) *Evaluator {
	return &Evaluator{Policy: p, Exempt: exempt, uids: map[uint32]uidFacts{}}
}

// Evaluate calls emit for every (rule, subject) whose condition holds in
// snap. The Match passed to emit is reused: copy what you keep.
func (ev *Evaluator) Evaluate(snap *platform.Snapshot, emit func(*Match)) {
	ev.evaluate(snap, emit, false)
}

// EvaluateUsers evaluates the user-scope rules only: the fast path run
// between full ticks when process events show a user forking hard.
func (ev *Evaluator) EvaluateUsers(snap *platform.Snapshot, emit func(*Match)) {
	ev.evaluate(snap, emit, true)
}

func (ev *Evaluator) evaluate(snap *platform.Snapshot, emit func(*Match), usersOnly bool) {
	p := ev.Policy
	clear(ev.uids)
	var userRules, procRules uint64 // classes that have rules of each scope
	fsRules := false
	for _, r := range p.Rules {
		switch r.Scope {
		case ScopeUser:
			userRules |= r.Class.bit
		case ScopeProcess:
			procRules |= r.Class.bit
		case ScopeFilesystem:
			fsRules = true
		}
	}
	for uid, u := range snap.Users {
		f := uidFacts{protected: p.ProtectedAccount(uid, u.Name, u.Groups) != ""}
		if !f.protected {
			for _, c := range p.Classes {
				if c.Contains(uid, u.Name, u.Groups) {
					f.classes |= c.bit
				}
			}
		}
		ev.uids[uid] = f
	}
	env := Env{Host: &snap.Host, pol: p}
	m := &ev.m
	if procRules != 0 && !usersOnly {
		for _, proc := range snap.Procs {
			f := ev.uids[proc.UID]
			if f.protected || f.classes&procRules == 0 {
				continue
			}
			if ev.Exempt != nil && ev.Exempt(proc.PID) {
				continue
			}
			u := snap.Users[proc.UID]
			// The account is known not protected (f.protected).
			if why, exe := p.protectedProcess(proc); why != "" || exe.protected() {
				continue
			}
			env.Proc, env.User = proc, u
			for _, r := range p.Rules {
				if r.Scope != ScopeProcess || f.classes&r.Class.bit == 0 || !r.When.eval(&env) {
					continue
				}
				*m = Match{Rule: r, Proc: proc, User: u, Host: &snap.Host}
				emit(m)
			}
		}
	}
	if userRules != 0 {
		env.Proc = nil
		for uid, u := range snap.Users {
			f := ev.uids[uid]
			if f.protected || f.classes&userRules == 0 {
				continue
			}
			env.User = u
			for _, r := range p.Rules {
				if r.Scope != ScopeUser || f.classes&r.Class.bit == 0 || !r.When.eval(&env) {
					continue
				}
				*m = Match{Rule: r, User: u, Host: &snap.Host}
				emit(m)
			}
		}
	}
	if fsRules && !usersOnly {
		env = Env{Host: &snap.Host, pol: p}
		for i := range snap.Filesystems {
			env.FS = &snap.Filesystems[i]
			for _, r := range p.Rules {
				if r.Scope != ScopeFilesystem || !r.When.eval(&env) {
					continue
				}
				*m = Match{Rule: r, Host: &snap.Host, FS: env.FS}
				emit(m)
			}
		}
	}
}

// Verdict is one rule's view of one process, for `guardd explain`.
type Verdict struct {
	Rule    *Rule
	Applies bool           // the process's account is in the rule's class
	Holds   bool           // the condition holds now
	Values  map[string]any // what the condition read
}

// Explain evaluates every rule against one process, whatever its class and
// protection, so an admin sees what each rule thinks. Filesystem rules are
// about no process and are left out.
func (p *Policy) Explain(proc *platform.Process, u *platform.UserStats, host *platform.Host) []Verdict {
	if u == nil {
		u = &platform.UserStats{UID: proc.UID, Name: proc.User, Procs: 1}
	}
	env := &Env{Proc: proc, User: u, Host: host, pol: p}
	var out []Verdict
	for _, r := range p.Rules {
		if r.Scope == ScopeFilesystem {
			continue
		}
		v := Verdict{Rule: r, Applies: r.Class.Contains(proc.UID, proc.User, u.Groups)}
		v.Holds = r.When.eval(env)
		v.Values = r.When.Values(env)
		out = append(out, v)
	}
	return out
}
