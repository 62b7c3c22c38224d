package storms

import (
	"sync"
	"sync/atomic"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// kill_user's choice of path. kill(-1, SIGKILL) as the user is the fastest
// way to end a fork bomb, and it spares nothing: where the user has a
// process the policy may protect (an sshd session, say), kill_user stops,
// judges and kills one by one instead (enforce/sweep.go). The fast path
// decides on per-user counts from events and has no process list, so this
// capability remembers, from each full sample, which users had a process
// that may be protected. It carries out the whole-user steps (kill_user,
// stop_user, resume_user) and reap.

type protectSeen struct {
	capability.Base
	pol atomic.Pointer[policy.Policy]

	mu       sync.Mutex      // guards uids and sweeping
	uids     map[uint32]bool // users with a process that may be protected, as of the last sample
	sweeping map[uint32]bool // users whose sweep is running
	sweeps   sync.WaitGroup
}

// NewUserSteps makes the capability of the whole-user steps and reap,
// with kill_user's protect index (for the registry).
func NewUserSteps() capability.Capability { return &protectSeen{} }

func (c *protectSeen) Name() string { return "user signals, reap and the kill_user protect index" }

// Steps: kill_user, stop_user, resume_user, reap.
func (c *protectSeen) Steps() map[policy.StepKind]capability.StepFunc {
	return map[policy.StepKind]capability.StepFunc{
		StepKillUser:   c.userSignalStep("KILL"),
		StepStopUser:   c.userSignalStep("STOP"),
		StepResumeUser: c.userSignalStep("CONT"),
		StepReap:       reapStep,
	}
}

func (c *protectSeen) Start(_ capability.Host, p *policy.Policy) error {
	c.pol.Store(p)
	c.uids = map[uint32]bool{}
	c.sweeping = map[uint32]bool{}
	return nil
}

// Stop waits for the sweeps still running: their audit lines are written
// before the audit log closes.
func (c *protectSeen) Stop() { c.sweeps.Wait() }

func (c *protectSeen) beginSweep(uid uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sweeping[uid] {
		return false
	}
	c.sweeping[uid] = true
	c.sweeps.Add(1)
	return true
}

func (c *protectSeen) endSweep(uid uint32) {
	c.mu.Lock()
	delete(c.sweeping, uid)
	c.mu.Unlock()
	c.sweeps.Done()
}

func (c *protectSeen) Apply(p *policy.Policy) { c.pol.Store(p) }

// Observe indexes the sample before the policy is evaluated on it, so the
// tick's own kill_user steps see it too.
func (c *protectSeen) Observe(snap *platform.Snapshot) {
	pol := c.pol.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.uids)
	for _, p := range snap.Procs {
		if mayBeProtected(pol, p) {
			c.uids[p.UID] = true
		}
	}
}

func (c *protectSeen) has(uid uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uids[uid]
}

// mayBeProtected says cheaply whether ProtectedProcess could spare p
// beyond its account: it runs a protected executable (where the sampler
// inspects, it inspected exactly those: Inspection is set), or a system
// effective uid (a setuid program).
func mayBeProtected(pol *policy.Policy, p *platform.Process) bool {
	if p.UID == 0 || p.UID < pol.MinUID {
		return false
	}
	return p.Inspection != nil || p.EUID == 0 || p.EUID < pol.MinUID || pol.Protect.MatchExe(p.Exe)
}

// userSpare is what kill_user and stop_user spare of uid's processes: the
// policy's protection, re-decided by the enforcer on each process read
// afresh. With mayHave false (no process of uid may be protected, as far
// as the last sample and snap tell), kill_user takes the fast path.
func (c *protectSeen) userSpare(h capability.Host, snap *platform.Snapshot, uid uint32) (spare *enforce.Spare, mayHave bool) {
	pol, acc := h.Policy(), h.Accounts()
	spare = &enforce.Spare{
		Candidate: func(exe string, euid uint32) bool {
			return euid == 0 || euid < pol.MinUID || pol.Protect.MatchExe(exe)
		},
		Protected: func(fresh *platform.Process) string { return pol.ProtectedProcess(fresh, acc.Groups(fresh.UID)) },
	}
	if c.has(uid) {
		return spare, true
	}
	for _, p := range snap.Procs {
		if p.UID == uid && mayBeProtected(pol, p) {
			return spare, true
		}
	}
	return spare, false
}

// sweepOffLock runs a whole-user sweep (kill_user or stop_user of a user
// with protected processes: up to a few seconds) beside the loop
// (Host.Detach: its audit line is written when the sweep ends, and a
// sweep that did nothing is tried again). One sweep per user at a time: a
// step that comes due meanwhile is skipped.
func (c *protectSeen) sweepOffLock(h capability.Host, m *policy.Match, ev report.Event, run func() enforce.UserResult) {
	uid := m.User.UID
	if !c.beginSweep(uid) {
		ev.Outcome, ev.Reason = report.OutcomeSkipped, "a sweep of this user's processes is still running"
		h.Write(&ev)
		return
	}
	h.Detach(m, ev, run, func() { c.endSweep(uid) })
}
