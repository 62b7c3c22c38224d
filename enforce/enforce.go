package enforce

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guardd/guardd/platform"
)

// Kinds of action.
const (
	ActRenice = "renice"
	ActKill   = "kill"
	ActStop   = "stop"
	ActReport = "report"
	ActReap   = "reap" // SIGCHLD to a parent of zombies; end it if they are still there after Grace (reap_linux.go)
)

// Outcomes, as written to the audit log.
const (
	Done    = "done"
	WouldDo = "would-do"
	Failed  = "failed"
	Skipped = "skipped"
)

// Action is one step to carry out on one process.
type Action struct {
	Kind   string
	Target platform.ProcID
	Nice   int           // renice
	Signal string        // kill: signal name without SIG
	Grace  time.Duration // kill: SIGKILL after this if still alive; 0 = no escalation
	DryRun bool          // monitor mode: check everything, change nothing

	// Check re-validates the freshly read process against the policy
	// (protection, class) right before acting; it returns why not to act,
	// or "". It may be nil.
	Check func(fresh *platform.Process) string

	// Tag is the caller's, carried into a FollowUp unchanged.
	Tag any
}

// Result is what came of an action.
type Result struct {
	Outcome string
	Reason  string            // why it failed or was skipped, or a note on what was done
	Proc    *platform.Process // the process as read right before acting; nil when gone
}

// FollowUp reports something an action led to later: the SIGKILL sent
// when a process outlived its grace period, or why none was needed.
type FollowUp struct {
	Action Action
	Result Result
}

// noPidfdNote goes into the audit line of every signal sent without a
// pidfd (old kernels, FreeBSD).
const noPidfdNote = "no pidfd: identity re-checked before the signal"

// Enforcer carries out actions. It is safe for concurrent use, except that
// MinUID is written only by the goroutine (or under the lock) that calls
// Do: use SetMinUID to change it.
type Enforcer struct {
	// MinUID: real or effective uids below it are never touched, whatever
	// the caller's Check says (uid 0 included).
	MinUID   uint32
	Accounts *platform.Accounts
	// OnFollowUp receives escalations that happen after Do returned. It is
	// called from another goroutine.
	OnFollowUp func(FollowUp)

	self      int32
	ancestors map[int32]bool // read once, in New: a re-parented guardd keeps them
	os        doorOS         // nil: the host (tests put a fake here)
	groups    GroupDriver    // the customers' groups (SetGroups); nil: none

	// minUID is MinUID for the timers, which run beside a reload.
	minUID atomic.Uint32

	mu      sync.Mutex // guards pending, reaps and stopped
	pending map[platform.ProcID]*escalation
	reaps   map[*reapWait]struct{}
	stopped bool
	// firing counts timer callbacks under way, for Close to wait on.
	firing sync.WaitGroup
}

// reapWait is a reap's follow-up waiting for its grace period to end.
type reapWait struct {
	timer *time.Timer
	h     *handle
	a     Action
	taken bool // guarded by Enforcer.mu: Close reports it and closes h
}

// escalation is a SIGKILL waiting for a grace period to end.
type escalation struct {
	timer  *time.Timer
	h      *handle
	action Action // the SIGKILL to come
	taken  bool   // guarded by Enforcer.mu: Close reports it and closes h
}

// New returns an enforcer that protects the calling process and its
// ancestors.
func New(minUID uint32, acc *platform.Accounts, onFollowUp func(FollowUp)) *Enforcer {
	e := &Enforcer{
		MinUID:     minUID,
		Accounts:   acc,
		OnFollowUp: onFollowUp,
		self:       int32(os.Getpid()),
		ancestors:  map[int32]bool{},
		pending:    map[platform.ProcID]*escalation{},
		reaps:      map[*reapWait]struct{}{},
	}
	e.minUID.Store(minUID)
	for _, pid := range platform.Ancestors(e.self) {
		e.ancestors[pid] = true
	}
	return e
}

// Exempt reports whether pid is guardd itself or one of its ancestors.
func (e *Enforcer) Exempt(pid int32) bool { return pid == e.self || e.ancestors[pid] }

// SetMinUID changes MinUID, for the actions to come and for the timers
// already running: a follow-up honours the stricter of the floor when it
// was scheduled and the floor when it fires. Call it where Do is called
// from (the caller's lock).
func (e *Enforcer) SetMinUID(uid uint32) {
	e.MinUID = uid
	e.minUID.Store(uid)
}

// Do carries out one action on one process. The order is the door's
// (doc.go): the floor on the pid, the identity re-check (pid and start
// time read afresh) with the floor on what was read and the caller's
// Check, dry-run, act; the caller journals the Result.
func (e *Enforcer) Do(a Action) Result {
	// Do runs where MinUID is written: the timers get it from here when
	// the caller sets the field instead of calling SetMinUID.
	e.minUID.Store(e.MinUID)
	if why := e.floor(procTarget(a.Target.PID), 0); why != "" {
		return Result{Outcome: Skipped, Reason: protected(why)}
	}
	o := e.host()
	fresh, err := o.readProcess(e, a.Target.PID)
	if err == platform.ErrGone {
		return Result{Outcome: Skipped, Reason: "process exited"}
	}
	if err != nil {
		return Result{Outcome: Failed, Reason: "re-read: " + err.Error()}
	}
	if fresh.StartTime != a.Target.StartTime {
		return Result{Outcome: Skipped, Reason: fmt.Sprintf("process exited; pid %d now names another process", a.Target.PID)}
	}
	if why := e.floor(freshTarget(fresh), 0); why != "" {
		return Result{Outcome: Skipped, Reason: protected(why), Proc: fresh}
	}
	if a.Check != nil {
		if why := a.Check(fresh); why != "" {
			return Result{Outcome: Skipped, Reason: why, Proc: fresh}
		}
	}
	// A leader that exited while its threads run shows as a zombie, but
	// the process is alive and its pidfd reaches every thread (the sampler
	// then reports a live thread's state, not Z).
	if fresh.State == 'Z' && !fresh.LeaderExited && a.Kind != ActReport {
		return Result{Outcome: Skipped, Reason: "zombie: only its parent can reap it", Proc: fresh}
	}
	if a.DryRun {
		return Result{Outcome: WouldDo, Reason: describe(a), Proc: fresh}
	}
	if a.Kind == ActReport {
		return Result{Outcome: Done, Proc: fresh}
	}
	note, err := o.act(e, a)
	switch {
	case err == platform.ErrGone:
		return Result{Outcome: Skipped, Reason: "process exited", Proc: fresh}
	case err != nil:
		return Result{Outcome: Failed, Reason: err.Error(), Proc: fresh}
	}
	return Result{Outcome: Done, Reason: note, Proc: fresh}
}

// act is Do's effect on the host, for a process that passed every check.
func (e *Enforcer) act(a Action) (note string, err error) {
	switch a.Kind {
	case ActRenice:
		note, err = renice(a.Target, a.Nice)
	case ActStop:
		var h *handle
		if h, err = signal(a.Target, "STOP"); err == nil {
			note = h.note()
			h.close()
		}
	case ActReap:
		note, err = e.reap(a, e.minUID.Load())
	case ActKill:
		var h *handle
		h, err = signal(a.Target, a.Signal)
		if err == nil {
			note = h.note()
		}
		if err == nil && a.Grace > 0 && a.Signal != "KILL" {
			if e.escalate(a, h) {
				note = join(note, fmt.Sprintf("SIGKILL follows in %s if it is still alive", a.Grace))
			} else {
				note = join(note, "guardd is stopping: no SIGKILL follows")
			}
		} else if h != nil {
			h.close()
		}
	default:
		err = fmt.Errorf("unknown action %q", a.Kind)
	}
	return note, err
}

// join joins two notes of an audit line.
func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

func describe(a Action) string {
	switch a.Kind {
	case ActRenice:
		return fmt.Sprintf("would set nice %d", a.Nice)
	case ActKill:
		if a.Grace > 0 && a.Signal != "KILL" {
			return fmt.Sprintf("would send SIG%s, then SIGKILL after %s", a.Signal, a.Grace)
		}
		return "would send SIG" + a.Signal
	case ActStop:
		return "would send SIGSTOP"
	case ActReap:
		return fmt.Sprintf("would send SIGCHLD, then end the process if its zombies are still there after %s", a.Grace)
	}
	return "would " + a.Kind
}

// escalate sends SIGKILL after the grace period unless the process exited.
// The handle (a pidfd on Linux) keeps naming the same process, so a pid
// reused in the meantime is never hit; without pidfds the handle re-reads
// the process right before the signal. It returns false, and closes h,
// once Close has run.
func (e *Enforcer) escalate(a Action, h *handle) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		h.close()
		return false
	}
	if old := e.pending[a.Target]; old != nil && old.timer.Stop() {
		old.h.close() // a newer signal restarts the grace period
	}
	esc := &escalation{h: h, action: Action{Kind: ActKill, Target: a.Target, Signal: "KILL", Grace: a.Grace, Tag: a.Tag}}
	e.pending[a.Target] = esc
	esc.timer = time.AfterFunc(a.Grace, func() {
		e.mu.Lock()
		if e.stopped {
			// Close reports this escalation and closes h, unless a newer
			// one had replaced it.
			if !esc.taken {
				h.close()
			}
			e.mu.Unlock()
			return
		}
		if e.pending[a.Target] == esc {
			delete(e.pending, a.Target)
		}
		e.firing.Add(1)
		e.mu.Unlock()
		defer e.firing.Done()
		defer h.close()
		fu := FollowUp{Action: esc.action}
		switch alive, err := h.alive(); {
		case err != nil:
			fu.Result = Result{Outcome: Failed, Reason: err.Error()}
		case !alive && h.note() != "":
			fu.Result = Result{Outcome: Skipped, Reason: fmt.Sprintf("exited within the %s grace period after SIG%s (%s: pid %d is free or names another process)", a.Grace, a.Signal, h.note(), a.Target.PID)}
		case !alive:
			fu.Result = Result{Outcome: Skipped, Reason: fmt.Sprintf("exited within the %s grace period after SIG%s", a.Grace, a.Signal)}
		case e.floorNow(a.Target) != "":
			// A reload raised min_uid, or the process became root
			// (a setuid exec), during the grace.
			fu.Result = Result{Outcome: Skipped, Reason: fmt.Sprintf("still alive %s after SIG%s, but %s: no SIGKILL", a.Grace, a.Signal, protected(e.floorNow(a.Target)))}
		default:
			if err := h.send("KILL"); err == platform.ErrGone {
				fu.Result = Result{Outcome: Skipped, Reason: join("exited just before SIGKILL", h.note())}
			} else if err != nil {
				fu.Result = Result{Outcome: Failed, Reason: err.Error()}
			} else {
				fu.Result = Result{Outcome: Done, Reason: join(fmt.Sprintf("still alive %s after SIG%s", a.Grace, a.Signal), h.note())}
			}
		}
		if e.OnFollowUp != nil {
			e.OnFollowUp(fu)
		}
	})
	return true
}

// floorNow is the floor on id read afresh, for a follow-up: "" when it
// may be acted on. A process that cannot be read, or whose pid names
// another process now, is left to the handle (which names the original).
func (e *Enforcer) floorNow(id platform.ProcID) string {
	fresh, err := e.host().readProcess(e, id.PID)
	if err != nil || fresh.StartTime != id.StartTime {
		return ""
	}
	return e.floor(freshTarget(fresh), 0)
}

// Pending is the number of follow-ups waiting for their grace period:
// SIGKILL escalations and reaps.
func (e *Enforcer) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending) + len(e.reaps)
}

// Close abandons pending follow-ups (reported as skipped), refuses new
// ones, and waits for those already firing: once it returns, no timer of
// e sends a signal or calls OnFollowUp. It must not be called from
// OnFollowUp.
func (e *Enforcer) Close() {
	e.mu.Lock()
	e.stopped = true
	pending, reaps := e.pending, e.reaps
	e.pending, e.reaps = map[platform.ProcID]*escalation{}, map[*reapWait]struct{}{}
	for _, esc := range pending {
		esc.taken = true
	}
	for rw := range reaps {
		rw.taken = true
	}
	e.mu.Unlock()
	// Every timer still listed either never fires now or, if it fired
	// already, finds e stopped and leaves it to us; those that got past
	// that check are no longer listed and are waited for below.
	for _, esc := range pending {
		esc.timer.Stop()
		esc.h.close()
		e.followUp(FollowUp{
			Action: esc.action,
			Result: Result{Outcome: Skipped, Reason: "guardd stopped before the grace period ended"},
		})
	}
	for rw := range reaps {
		rw.timer.Stop()
		rw.h.close()
		e.followUp(FollowUp{
			Action: Action{Kind: ActReap, Target: rw.a.Target, Grace: rw.a.Grace, Tag: rw.a.Tag},
			Result: Result{Outcome: Skipped, Reason: "guardd stopped before the grace period ended: the parent was not ended"},
		})
	}
	e.firing.Wait()
}

func (e *Enforcer) followUp(fu FollowUp) {
	if e.OnFollowUp != nil {
		e.OnFollowUp(fu)
	}
}
