package storms

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"golang.org/x/sys/unix"
)

// The fork-storm observer. Process events from the kernel's proc
// connector keep per-user counts between ticks (platform.Tracker); a user
// forking hard wakes the daemon's user-rules fast path (Host.WakeUsers),
// which evaluates the user-scope rules on those counts (Users) at once, so
// kill_user does not wait for the next tick. New processes of accounts
// under a `limits` block get their RLIMIT_NPROC cap as they appear.

const (
	// connectorBuffer is the proc connector's receive buffer: a storm of
	// thousands of forks must not overflow it (each event is ~60 bytes,
	// plus per-datagram overhead in the socket's accounting).
	connectorBuffer = 8 << 20
	// userWakeEvery bounds how often fork events wake the fast path.
	userWakeEvery = 20 * time.Millisecond
	// pollEvery is the fallback's scan period where there are no events.
	pollEvery = 100 * time.Millisecond
)

type forkStorm struct {
	capability.Base
	h                capability.Host
	tracker          *platform.Tracker
	conn             *platform.Connector // nil when polling
	pol              atomic.Pointer[policy.Policy]
	noCapSysResource atomic.Bool // direct prlimit refused: caps go through the helper, per tick
	lastWake         atomic.Int64
	observed         uint64 // Observe calls: every 16th sweeps capped

	mu      sync.Mutex      // guards the fields below
	watched map[uint32]bool // uid → in a class with user-scope rules (cache, cleared on reload)
	capOf   map[uint32]int  // uid → its process cap, 0 for none (cache, cleared on reload)
	// capped holds the processes known to carry their cap: pid → start
	// time (0 until a sample confirms it). A child inherits its parent's
	// limits at fork, so a capped parent's children need no syscall. An
	// entry names one process, never a pid: a confirmed one by its start
	// time; an unconfirmed one because every fork event sets or deletes
	// the child's entry, every exit event deletes it, and lost events
	// drop the unconfirmed ones (forgetUnconfirmed), so a reused pid
	// never finds its predecessor's.
	capped   map[int32]uint64
	capping  atomic.Bool // a helper batch is running
	stopPoll chan struct{}
	done     chan struct{}
}

// New makes the fork-storm observer (for the registry).
func New() capability.Capability { return &forkStorm{} }

func (f *forkStorm) Name() string { return "fork-storm observer" }

// Users gives the fast path each user's live processes and fork rate as
// of now, from events (capability.UserCounter).
func (f *forkStorm) Users(now time.Time, fn func(uid uint32, live int32, forksPerSec float64)) {
	f.tracker.Users(now, fn)
}

func (f *forkStorm) Start(h capability.Host, p *policy.Policy) error {
	f.h = h
	f.tracker = platform.NewTracker()
	f.capped = map[int32]uint64{}
	f.Apply(p)
	f.done = make(chan struct{})
	conn, err := platform.OpenConnector(connectorBuffer)
	if err != nil {
		h.Log().Warn("process events unavailable: fork storms are seen by scanning /proc every 100ms, and user.forks_per_sec counts only what the scans catch",
			"err", err)
		f.stopPoll = make(chan struct{})
		go f.poll()
		return nil
	}
	f.conn = conn
	h.Log().Info("following process events from the kernel's proc connector")
	go f.readEvents()
	return nil
}

func (f *forkStorm) Apply(p *policy.Policy) {
	f.pol.Store(p)
	if p.Mode == policy.ModeMonitor && len(p.Limits) > 0 {
		f.h.Log().Warn("monitor mode: limits blocks set no process caps (set mode = \"enforce\" in the guardd block to apply them)",
			"limits", len(p.Limits))
	}
	f.mu.Lock()
	f.watched = map[uint32]bool{}
	f.capOf = map[uint32]int{}
	clear(f.capped) // a lower cap applies to everything again
	f.mu.Unlock()
}

func (f *forkStorm) Stop() {
	if f.conn != nil {
		f.conn.Close()
	}
	if f.stopPoll != nil {
		close(f.stopPoll)
	}
	<-f.done
}

// account returns whether uid is in a class with user-scope rules, and its
// process cap, cached until the next reload.
func (f *forkStorm) account(uid uint32) (watched bool, cap int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accountLocked(uid)
}

func (f *forkStorm) accountLocked(uid uint32) (watched bool, cap int) {
	if w, ok := f.watched[uid]; ok {
		return w, f.capOf[uid]
	}
	p := f.pol.Load()
	acc := f.h.Accounts()
	name, groups := acc.Name(uid), acc.Groups(uid)
	var w bool
	var c int
	if p.ProtectedAccount(uid, name, groups) == "" {
		for _, r := range p.Rules {
			if r.Scope == policy.ScopeUser && r.Class.Contains(uid, name, groups) {
				w = true
				break
			}
		}
		if p.Mode != policy.ModeMonitor { // monitor mode changes nothing, caps included
			c, _ = p.ProcCap(uid, name, groups)
		}
		if c > 0 && f.h.Isolation(uid).PidsLimited {
			// The group's pids limit holds the same cap, exactly and
			// beyond the reach of processes not capped yet; an
			// RLIMIT_NPROC at the same value would refuse first and hide
			// the group's refusals (user.procs_faults).
			c = 0
		}
	}
	f.watched[uid], f.capOf[uid] = w, c
	return w, c
}

// readEvents follows the proc connector until Stop.
func (f *forkStorm) readEvents() {
	defer close(f.done)
	for {
		err := f.conn.Read(f.handle)
		switch {
		case errors.Is(err, platform.ErrEventsLost):
			// The counts are corrected by the next tick's Sync; wake it now.
			f.tracker.Lost()
			f.forgetUnconfirmed()
			f.h.Wake()
		case errors.Is(err, os.ErrClosed):
			return
		case err != nil:
			f.h.Log().Error("process events failed: fork storms are now seen only at each tick", "err", err)
			return
		}
	}
}

func (f *forkStorm) handle(ev platform.ProcEvent) {
	f.h.PublishProcEvent(ev)
	if ev.Kind == platform.EventExec {
		f.h.Sampler().NoteExec(ev.TGID) // exe, protection, temp-exe: even when comm stays
		return
	}
	now := time.Now()
	uid, ok := f.tracker.Handle(ev, now, platform.RealUID)
	if !ok {
		if ev.IsProcess() && (ev.Kind == platform.EventFork || ev.Kind == platform.EventExit) {
			f.mu.Lock()
			delete(f.capped, ev.TGID) // the pid names a new process, or none
			f.mu.Unlock()
		}
		return
	}
	f.mu.Lock()
	watched, cap := f.accountLocked(uid)
	// A forked child inherits its parent's limits, so only a process that
	// enters a capped account by changing its uid (php-fpm workers,
	// suexec) needs capping between ticks.
	if ev.Kind == platform.EventFork {
		if _, inherited := f.capped[ev.ParentTGID]; inherited && cap > 0 {
			f.capped[ev.TGID] = 0
		} else {
			delete(f.capped, ev.TGID) // a reused pid: not its predecessor's cap
		}
	}
	f.mu.Unlock()
	if ev.Kind == platform.EventUID && cap > 0 && !f.noCapSysResource.Load() {
		f.capNow(ev.TGID, uid, cap)
	}
	if watched && ev.Kind == platform.EventFork {
		if last := f.lastWake.Load(); now.UnixNano()-last >= int64(userWakeEvery) && f.lastWake.CompareAndSwap(last, now.UnixNano()) {
			f.h.WakeUsers()
		}
	}
}

// forgetUnconfirmed drops the entries of capped that only events vouch
// for: after lost events, one may name a pid whose exit was lost and
// which now names another process. The next sample caps them anew.
func (f *forkStorm) forgetUnconfirmed() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for pid, start := range f.capped {
		if start == 0 {
			delete(f.capped, pid)
		}
	}
}

// capNow caps a process from the event goroutine. Its start time is read
// first, so the cap goes to exactly that process.
func (f *forkStorm) capNow(pid int32, uid uint32, cap int) {
	var st platform.Stat
	if platform.ReadStat(pid, &st) != nil {
		return // gone already
	}
	f.applyCap(platform.ProcID{PID: pid, StartTime: st.StartTime}, uid, cap)
}

// applyCap sets the cap directly (CAP_SYS_RESOURCE); false when the
// kernel refused for lack of it, so that the tick's helper batch does it.
func (f *forkStorm) applyCap(id platform.ProcID, uid uint32, cap int) bool {
	err := f.h.Enforcer().SetProcCap(id, uid, cap)
	switch {
	case err == nil, errors.Is(err, platform.ErrGone):
		f.mu.Lock()
		f.capped[id.PID] = id.StartTime
		f.mu.Unlock()
		return true
	case errors.Is(err, unix.EPERM):
		if !f.noCapSysResource.Swap(true) {
			f.h.Log().Warn("no CAP_SYS_RESOURCE: process caps are set through a helper running as each user, once per tick (slower; grant the capability, as the systemd unit does)")
		}
	default:
		f.h.Log().Debug("process cap", "pid", id.PID, "err", err)
	}
	return false
}

// Observe corrects the event counts with the sample, gives the users their
// fork rates, and caps processes of capped accounts not capped yet (those
// started before guardd, and everything when caps go through the helper).
func (f *forkStorm) Observe(snap *platform.Snapshot) {
	f.observed++
	f.tracker.Sync(snap)
	for uid, u := range snap.Users {
		u.ForksPerSec = f.tracker.ForksPerSec(uid, snap.Time)
	}
	type group struct{ uid, gid uint32 }
	var batch map[group][]int32
	f.mu.Lock()
	for _, p := range snap.Procs {
		_, cap := f.accountLocked(p.UID)
		if cap == 0 || p.State == 'Z' {
			continue
		}
		if start, ok := f.capped[p.PID]; ok && (start == 0 || start == p.StartTime) {
			f.capped[p.PID] = p.StartTime
			continue
		}
		if start, ok := f.capped[p.PPID]; ok && start != 0 && p.StartTime >= start {
			f.capped[p.PID] = p.StartTime // inherited at fork
			continue
		}
		delete(f.capped, p.PID) // a reused pid
		if !f.noCapSysResource.Load() {
			f.mu.Unlock()
			ok := f.applyCap(p.ProcID, p.UID, cap)
			f.mu.Lock()
			if ok {
				continue
			}
		}
		if batch == nil {
			batch = map[group][]int32{}
		}
		g := group{p.UID, p.GID}
		batch[g] = append(batch[g], p.PID)
	}
	if f.observed%16 == 0 && len(f.capped) > 0 {
		// Its size before the sweep: what the events left (a leak shows).
		known := len(f.capped)
		f.sweepCapped(snap)
		f.h.Log().Debug("capped processes", "known", known, "after_sweep", len(f.capped))
	}
	f.mu.Unlock()
	// The helper batch runs beside the loop: a helper takes milliseconds,
	// and the loop must not wait for it in a storm. Processes it caps are
	// marked when it is done; one batch runs at a time.
	if len(batch) == 0 || !f.capping.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer f.capping.Store(false)
		for g, pids := range batch {
			_, cap := f.account(g.uid)
			if err := f.h.Enforcer().ProcCapAsUser(g.uid, g.gid, cap, pids); err != nil {
				f.h.Log().Warn("process cap through the helper failed", "uid", g.uid, "err", err)
				continue
			}
			f.mu.Lock()
			for _, pid := range pids {
				f.capped[pid] = 0 // the next sample confirms the start time
			}
			f.mu.Unlock()
		}
	}()
}

// sweepCapped drops the entries of capped that name no process of the
// sample: exits the events missed, and unconfirmed entries the helper
// left for processes that exited while it ran. An entry for a process
// forked since the sample goes too; that costs it one more cap, never a
// missing one. Called with f.mu held.
func (f *forkStorm) sweepCapped(snap *platform.Snapshot) {
	if len(f.capped) == 0 {
		return
	}
	inSample := make(map[int32]uint64, len(f.capped))
	for _, p := range snap.Procs {
		if _, ok := f.capped[p.PID]; ok {
			inSample[p.PID] = p.StartTime
		}
	}
	for pid, start := range f.capped {
		if st, ok := inSample[pid]; !ok || (start != 0 && st != start) {
			delete(f.capped, pid)
		}
	}
}

// poll stands in for process events where the proc connector is missing:
// it lists /proc every pollEvery and turns new and vanished pids into
// fork and exit events.
func (f *forkStorm) poll() {
	defer close(f.done)
	known := map[int32]bool{}
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	first := true
	for {
		select {
		case <-f.stopPoll:
			return
		case <-t.C:
		}
		pids, err := platform.ListPIDs()
		if err != nil {
			continue
		}
		seen := make(map[int32]bool, len(known))
		for _, pid := range pids {
			seen[pid] = true
			if known[pid] || first {
				continue
			}
			var st platform.Stat
			if platform.ReadStat(pid, &st) != nil {
				continue
			}
			f.handle(platform.ProcEvent{Kind: platform.EventFork, PID: pid, TGID: pid, ParentPID: st.PPID, ParentTGID: st.PPID})
		}
		for pid := range known {
			if !seen[pid] {
				f.handle(platform.ProcEvent{Kind: platform.EventExit, PID: pid, TGID: pid})
			}
		}
		known, first = seen, false
	}
}
