package main

import (
	"sync"
	"sync/atomic"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// kill_user's choice of path. kill(-1, SIGKILL) as the user is the fastest
// way to end a fork bomb, and it spares nothing: where the user has a
// process the policy may protect (an sshd session, say), kill_user stops,
// judges and kills one by one instead (enforce/sweep.go). The fast path
// decides on per-user counts from events and has no process list, so this
// component remembers, from each full sample, which users had a process
// that may be protected.

func init() { registerComponent(func() component { return &protectSeen{} }) }

type protectSeen struct {
	componentBase
	pol atomic.Pointer[policy.Policy]

	mu   sync.Mutex      // guards uids
	uids map[uint32]bool // users with a process that may be protected, as of the last sample
}

func (c *protectSeen) Name() string { return "kill_user protect index" }

func (c *protectSeen) Start(d *daemonState, p *policy.Policy) error {
	c.pol.Store(p)
	c.uids = map[uint32]bool{}
	return nil
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
		if !c.uids[p.UID] && mayBeProtected(pol, p) {
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
func (d *daemonState) userSpare(snap *platform.Snapshot, uid uint32) (spare *enforce.Spare, mayHave bool) {
	pol, acc := d.pol, d.accounts
	spare = &enforce.Spare{
		Candidate: func(exe string, euid uint32) bool {
			return euid == 0 || euid < pol.MinUID || pol.Protect.MatchExe(exe)
		},
		Protected: func(fresh *platform.Process) string { return pol.ProtectedProcess(fresh, acc.Groups(fresh.UID)) },
	}
	for _, c := range d.components {
		if ps, ok := c.(*protectSeen); ok && ps.has(uid) {
			return spare, true
		}
	}
	for _, p := range snap.Procs {
		if p.UID == uid && mayBeProtected(pol, p) {
			return spare, true
		}
	}
	return spare, false
}
