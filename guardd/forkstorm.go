package main

import (
	"errors"
	"fmt"
	"github.com/guardd/guardd/capability"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
	"golang.org/x/sys/unix"
)

// Fork storms, process caps and zombies. Process events from the kernel's
// proc connector keep per-user counts between ticks (platform.Tracker); a
// user forking hard wakes the loop's fast path (userTick), which evaluates
// the user-scope rules on those counts at once, so kill_user does not wait
// for the next tick. New processes of accounts under a `limits` block get
// their RLIMIT_NPROC cap as they appear.

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

// Steps: kill_user, stop_user, resume_user, reap.
func (f *forkStorm) Steps() map[policy.StepKind]capability.StepFunc {
	return map[policy.StepKind]capability.StepFunc{
		policy.StepKillUser:   legacyStep(userSignalStep("KILL")),
		policy.StepStopUser:   legacyStep(userSignalStep("STOP")),
		policy.StepResumeUser: legacyStep(userSignalStep("CONT")),
		policy.StepReap:       legacyStep(reapStep),
	}
}

type forkStorm struct {
	componentBase
	d                *daemonState
	tracker          *platform.Tracker
	conn             *platform.Connector // nil when polling
	pol              atomic.Pointer[policy.Policy]
	noCapSysResource atomic.Bool // direct prlimit refused: caps go through the helper, per tick
	lastWake         atomic.Int64

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

func (f *forkStorm) Name() string { return "fork-storm observer" }

func (f *forkStorm) Start(h capability.Host, p *policy.Policy) error {
	d := h.(*daemonState) // until this capability has its own package
	f.d = d
	f.tracker = platform.NewTracker()
	f.capped = map[int32]uint64{}
	f.Apply(p)
	f.done = make(chan struct{})
	conn, err := platform.OpenConnector(connectorBuffer)
	if err != nil {
		d.log.Warn("process events unavailable: fork storms are seen by scanning /proc every 100ms, and user.forks_per_sec counts only what the scans catch",
			"err", err)
		f.stopPoll = make(chan struct{})
		go f.poll()
		return nil
	}
	f.conn = conn
	d.log.Info("following process events from the kernel's proc connector")
	go f.readEvents()
	return nil
}

func (f *forkStorm) Apply(p *policy.Policy) {
	f.pol.Store(p)
	if p.Mode == policy.ModeMonitor && len(p.Limits) > 0 {
		f.d.log.Warn("monitor mode: limits blocks set no process caps (set mode = \"enforce\" in the guardd block to apply them)",
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
	name := f.d.accounts.Name(uid)
	groups := f.d.accounts.Groups(uid)
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
			f.d.Wake()
		case errors.Is(err, os.ErrClosed):
			return
		case err != nil:
			f.d.log.Error("process events failed: fork storms are now seen only at each tick", "err", err)
			return
		}
	}
}

func (f *forkStorm) handle(ev platform.ProcEvent) {
	if ev.Kind == platform.EventExec {
		f.d.sampler.NoteExec(ev.TGID) // exe, protection, temp-exe: even when comm stays
		return
	}
	now := time.Now()
	uid, ok := f.tracker.Handle(ev, now, realUID)
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
			f.d.WakeUsers()
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
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	var st platform.Stat
	if err != nil || platform.ParseStat(b, &st) != nil {
		return // gone already
	}
	f.applyCap(platform.ProcID{PID: pid, StartTime: st.StartTime}, uid, cap)
}

// applyCap sets the cap directly (CAP_SYS_RESOURCE); false when the
// kernel refused for lack of it, so that the tick's helper batch does it.
func (f *forkStorm) applyCap(id platform.ProcID, uid uint32, cap int) bool {
	err := f.d.enf.SetProcCap(id, uid, cap)
	switch {
	case err == nil, errors.Is(err, platform.ErrGone):
		f.mu.Lock()
		f.capped[id.PID] = id.StartTime
		f.mu.Unlock()
		return true
	case errors.Is(err, unix.EPERM):
		if !f.noCapSysResource.Swap(true) {
			f.d.log.Warn("no CAP_SYS_RESOURCE: process caps are set through a helper running as each user, once per tick (slower; grant the capability, as the systemd unit does)")
		}
	default:
		f.d.log.Debug("process cap", "pid", id.PID, "err", err)
	}
	return false
}

// realUID reads the real uid of a process the tracker does not know yet.
func realUID(pid int32) (uint32, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return 0, false
	}
	ids, err := platform.ParseStatusIDs(b)
	return ids.UID, err == nil
}

// Observe corrects the event counts with the sample, gives the users their
// fork rates, and caps processes of capped accounts not capped yet (those
// started before guardd, and everything when caps go through the helper).
func (f *forkStorm) Observe(snap *platform.Snapshot) {
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
	if f.d.ticks%16 == 0 && len(f.capped) > 0 {
		// Its size before the sweep: what the events left (a leak shows).
		known := len(f.capped)
		f.sweepCapped(snap)
		f.d.log.Debug("capped processes", "known", known, "after_sweep", len(f.capped))
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
			if err := f.d.enf.ProcCapAsUser(g.uid, g.gid, cap, pids); err != nil {
				f.d.log.Warn("process cap through the helper failed", "uid", g.uid, "err", err)
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
		ents, err := os.ReadDir("/proc")
		if err != nil {
			continue
		}
		seen := make(map[int32]bool, len(known))
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			seen[int32(pid)] = true
			if known[int32(pid)] || first {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			var st platform.Stat
			if err != nil || platform.ParseStat(b, &st) != nil {
				continue
			}
			f.handle(platform.ProcEvent{Kind: platform.EventFork, PID: int32(pid), TGID: int32(pid), ParentPID: st.PPID, ParentTGID: st.PPID})
		}
		for pid := range known {
			if !seen[pid] {
				f.handle(platform.ProcEvent{Kind: platform.EventExit, PID: pid, TGID: pid})
			}
		}
		known, first = seen, false
	}
}

// userTick is the fast path, run beside the loop when a user forks hard:
// the user-scope rules whose steps act on the user as a whole (kill_user,
// stop_user, report, ...) are evaluated at once on the last sample's
// per-user facts, with process counts and fork rates from events as of
// now. A user with no process at the last sample (a fork bomb's first
// second) is included. Rules with per-process steps wait for the full
// tick, which knows the processes.
func (d *daemonState) userTick(now time.Time) {
	var fs *forkStorm
	for _, c := range d.components {
		if f, ok := c.(*forkStorm); ok {
			fs = f
		}
	}
	d.decideMu.Lock()
	if d.userBase == nil || fs == nil {
		d.decideMu.Unlock()
		return
	}
	snap := platform.Snapshot{Time: now, Host: d.hostBase, Users: make(map[uint32]*platform.UserStats, len(d.userBase))}
	fs.tracker.Users(now, func(uid uint32, live int32, forks float64) {
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

// userSignalStep handles kill_user, stop_user and resume_user. kill_user
// and stop_user spare what the policy protects (killuser.go); kill_user of
// a user with nothing protectable, and resume_user, are one signal to
// every process of the user at once, through the enforcer's helper.
func userSignalStep(sig string) stepHandler {
	return func(d *daemonState, snap *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event) {
		ev := base
		ev.Signal = sig
		if m.Proc != nil {
			capability.FillProc(&ev, m.Proc) // what set it off
		}
		uid := m.User.UID
		gid := uid
		if acc, ok := d.accounts.LookupUID(uid); ok {
			gid = acc.GID
		}
		if why := d.pol.ProtectedAccount(uid, m.User.Name, m.User.Groups); why != "" {
			ev.Outcome, ev.Reason = report.OutcomeSkipped, "protected: "+why
		} else {
			dry := m.Rule.Mode == policy.ModeMonitor
			var res enforce.UserResult
			switch sig {
			case "KILL", "STOP":
				spare, mayHave := d.userSpare(snap, uid)
				if sig == "KILL" && !mayHave {
					res = d.enf.KillUser(uid, gid, nil, dry) // the fast path: kill(-1) as the user
					break
				}
				r, run := d.enf.PrepareUserSweep(uid, gid, spare, sig == "KILL", dry)
				if run != nil {
					d.sweepOffLock(m, ev, run) // writes the audit line when done
					return
				}
				res = r
			default:
				res = d.enf.SignalUser(uid, gid, sig, dry)
			}
			ev.Outcome, ev.Reason = res.Outcome, res.Reason
		}
		d.write(&ev)
	}
}

// reapStep handles reap: the parents of the zombies (the matched process
// if it has zombie children, its parent if it is a zombie; for a user
// rule, the parents of all the user's zombies) get SIGCHLD, and are ended
// if they do not reap in time, unless they belong to someone else or are
// protected, in which case the audit line reports them.
func reapStep(d *daemonState, snap *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event) {
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
	// while a reload may replace d.pol: it keeps the policy it was given.
	pol := d.pol
	for _, parent := range parents {
		ev := base
		capability.FillProc(&ev, parent)
		tag := ev
		res := d.enf.Do(enforce.Action{
			Kind: enforce.ActReap, Target: parent.ProcID, Grace: st.Grace, Signal: "CHLD",
			DryRun: m.Rule.Mode == policy.ModeMonitor,
			Tag:    &tag,
			Check: func(fresh *platform.Process) string {
				if fresh.UID != owner {
					return fmt.Sprintf("the zombies' parent belongs to uid %d, not to their owner: reported only", fresh.UID)
				}
				if why := pol.ProtectedProcess(fresh, d.accounts.Groups(fresh.UID)); why != "" {
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
		d.write(&ev)
	}
}
