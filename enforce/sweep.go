//go:build linux || freebsd

package enforce

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guardd/guardd/platform"
)

// kill_user and stop_user that honour protect. kill(-1) as the user hits
// every process of the uid, the customer's sshd session and dovecot
// processes included, so where the user has a protected process guardd
// instead:
//
//  1. stops every process of the user: kill(-1, SIGSTOP) through the
//     helper, repeated until two listings in a row find the same set, all
//     stopped. A stopped process cannot fork, and kill(-1) is atomic
//     against fork (user.go), so the set stops growing with the first
//     round; later rounds catch processes that were in uninterruptible
//     sleep (they stop when they wake);
//  2. judges each process: the floor (door.go: a system effective uid,
//     guardd itself and its ancestors, pid 1) and the caller's Spare (the policy's protection, re-decided
//     on the process read afresh);
//  3. kills every process not spared through its pidfd (pid and start time
//     re-checked), for kill_user; leaves them stopped for stop_user;
//  4. continues the spared ones.
//
// All of it but the kill(-1) rounds runs in guardd as root, so the
// customer cannot stop it; each helper run is one system call long and is
// continued if the customer stops it (runHelperWatched).

// Spare says which of a user's processes kill_user and stop_user leave
// running: the policy's protection, handed in by the caller (enforce does
// not know the policy).
type Spare struct {
	// Candidate says cheaply, from the executable path (as the listing
	// read it) and the effective uid, whether a process may be protected:
	// only candidates are read in full and judged by Protected.
	Candidate func(exe string, euid uint32) bool
	// Protected judges a freshly read process: why it is spared, or "".
	Protected func(fresh *platform.Process) string
}

// userProc is one process of a user as the sweep lists it.
type userProc struct {
	ID         platform.ProcID
	PPID       int32
	State      byte
	EUID       uint32
	Exe        string
	ExeUnknown bool // the listing reads no executables (FreeBSD): every process is a candidate
}

func (p userProc) settled() bool { return p.State == 'T' || p.State == 't' || p.dead() }
func (p userProc) dead() bool    { return p.State == 'Z' || p.State == 'X' }

// userOS is what the sweep does to the host; tests use a fake.
type userOS interface {
	stopAll() (none bool, err error) // one kill(-1, SIGSTOP) as the user; none: it found no process
	list() ([]userProc, error)       // the user's processes
	read(pid int32) (*platform.Process, error)
	signal(id platform.ProcID, sig string) error // through a pidfd, identity re-checked
	pause()                                      // between rounds that found processes running
	expired() bool                               // the sweep's time is up
	interference() string                        // what the user did to the helpers, for the audit line; "" for nothing
}

// maxSweepRounds bounds the stop rounds: at sweepPause each, about a
// second; sweepBudget bounds the whole sweep, which holds up the step
// (and the decisions waiting behind it) meanwhile.
const (
	maxSweepRounds = 50
	sweepPause     = 20 * time.Millisecond
	sweepBudget    = 3 * time.Second
)

// stopSweep stops every process of the user and returns them once two
// listings in a row agree and every process is stopped (or dead).
func stopSweep(o userOS) (procs []userProc, rounds int, err error) {
	var prev []userProc
	var lastErr error
	for rounds = 1; rounds <= maxSweepRounds; rounds++ {
		if rounds > 1 && o.expired() {
			break
		}
		if _, err := o.stopAll(); err != nil {
			lastErr = err // the customer may have killed the helper: another round
		}
		cur, err := o.list()
		if err != nil {
			return prev, rounds, fmt.Errorf("list the user's processes: %w", err)
		}
		settled := !slices.ContainsFunc(cur, func(p userProc) bool { return !p.settled() })
		if settled && sameSet(prev, cur) && (prev != nil || len(cur) == 0) {
			return cur, rounds, nil
		}
		prev = cur
		if !settled {
			o.pause()
		}
	}
	rounds = min(rounds-1, maxSweepRounds)
	n := 0
	for _, p := range prev {
		if !p.settled() {
			n++
		}
	}
	why := fmt.Sprintf("%d process(es) still running after %d stop rounds", n, rounds)
	if n == 0 {
		why = fmt.Sprintf("the set of processes still changing after %d stop rounds", rounds)
	}
	if o.expired() {
		why += fmt.Sprintf(" (out of time: %s)", sweepBudget)
	}
	if lastErr != nil {
		why += " (last helper error: " + lastErr.Error() + ")"
	}
	return prev, rounds, errors.New(why)
}

func sameSet(a, b []userProc) bool {
	if len(a) != len(b) {
		return false
	}
	ids := make(map[platform.ProcID]bool, len(a))
	for _, p := range a {
		ids[p.ID] = true
	}
	for _, p := range b {
		if !ids[p.ID] {
			return false
		}
	}
	return true
}

// sweepUser stops the user's processes and kills (kill) or leaves stopped
// the ones not spared, then continues the spared ones.
func (e *Enforcer) sweepUser(o userOS, uid, minUID uint32, spare *Spare, kill bool) UserResult {
	start := time.Now()
	procs, rounds, sweepErr := stopSweep(o)
	var spared []string
	var sparedIDs []platform.ProcID
	acted, gone, failed := 0, 0, 0
	var firstErr error
	for _, p := range procs {
		if p.dead() {
			continue
		}
		why := e.spareWhy(o, p, uid, minUID, spare)
		if why == "gone" {
			gone++
			continue
		}
		if why != "" {
			sparedIDs = append(sparedIDs, p.ID)
			spared = append(spared, fmt.Sprintf("pid %d (%s)", p.ID.PID, why))
			continue
		}
		if !kill {
			if p.settled() {
				acted++
			}
			continue
		}
		switch err := o.signal(p.ID, "KILL"); {
		case err == nil:
			acted++
		case errors.Is(err, platform.ErrGone):
			gone++
		default:
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	resumed := 0
	for _, id := range sparedIDs {
		if err := o.signal(id, "CONT"); err == nil {
			resumed++
		} else if !errors.Is(err, platform.ErrGone) {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}

	verb := map[bool]string{true: "killed", false: "stopped"}[kill]
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d process(es) of uid %d", verb, acted, uid)
	if kill {
		b.WriteString(" through pidfds")
	}
	fmt.Fprintf(&b, " after %d stop round(s) (%s)", rounds, time.Since(start).Round(time.Millisecond))
	if len(spared) > 0 {
		fmt.Fprintf(&b, "; spared and resumed %d of %d protected: %s", resumed, len(spared), summarise(spared, 5))
	}
	if gone > 0 {
		fmt.Fprintf(&b, "; %d exited meanwhile", gone)
	}
	if failed > 0 {
		fmt.Fprintf(&b, "; %d signal(s) failed: %v", failed, firstErr)
	}
	if sweepErr != nil {
		fmt.Fprintf(&b, "; %v", sweepErr)
	}
	if s := o.interference(); s != "" {
		b.WriteString("; " + s)
	}
	switch {
	case acted > 0:
		return UserResult{Outcome: Done, Reason: b.String()}
	case len(spared) > 0 && failed == 0 && sweepErr == nil:
		return UserResult{Outcome: Skipped, Reason: "protected: every live process of uid " + strconv.FormatUint(uint64(uid), 10) + " is; " + b.String()}
	case len(procs) == 0 && sweepErr == nil:
		return UserResult{Outcome: Failed, Reason: fmt.Sprintf("no process of uid %d to %s", uid, map[bool]string{true: "kill", false: "stop"}[kill])}
	}
	return UserResult{Outcome: Failed, Reason: "nothing " + verb + ": " + b.String()}
}

// spareWhy says why p is spared, "gone" when it exited or its pid names
// another process now, or "" when it is to be acted on.
func (e *Enforcer) spareWhy(o userOS, p userProc, uid, minUID uint32, spare *Spare) string {
	if why := e.floor(target{kind: TargetProcess, pid: p.ID.PID, uid: uid, euid: p.EUID, known: true}, minUID); why != "" {
		return why
	}
	switch {
	case spare == nil || spare.Protected == nil:
		return ""
	case !p.ExeUnknown && spare.Candidate != nil && !spare.Candidate(p.Exe, p.EUID):
		return ""
	}
	fresh, err := o.read(p.ID.PID)
	if err != nil || fresh.StartTime != p.ID.StartTime {
		return "gone"
	}
	if why := e.floor(freshTarget(fresh), minUID); why != "" {
		return why // became setuid since the listing
	}
	return spare.Protected(fresh)
}

func summarise(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}

// KillUser ends every process of uid that spare does not protect. With
// spare nil (the user has no process that may be protected) it takes the
// fast path, one kill(-1, SIGKILL) as the user (SignalUser); otherwise it
// stops, judges and kills as described at the top of this file.
func (e *Enforcer) KillUser(uid, gid uint32, spare *Spare, dryRun bool) UserResult {
	if spare == nil {
		return e.SignalUser(uid, gid, "KILL", dryRun)
	}
	res, run := e.PrepareUserSweep(uid, gid, spare, true, dryRun)
	if run != nil {
		res = run()
	}
	return res
}

// StopUser stops every process of uid, then resumes those spare protects
// (nil: none).
func (e *Enforcer) StopUser(uid, gid uint32, spare *Spare, dryRun bool) UserResult {
	res, run := e.PrepareUserSweep(uid, gid, spare, false, dryRun)
	if run != nil {
		res = run()
	}
	return res
}

// PrepareUserSweep is KillUser's sweep (kill) or StopUser's, in two parts
// for a caller that runs the sweep on a goroutine of its own: the checks
// and the enforcer's settings are read now, on the caller's goroutine; run
// does the rest and may be called from any goroutine. When the result is
// known at once (a system uid, dry-run) run is nil.
func (e *Enforcer) PrepareUserSweep(uid, gid uint32, spare *Spare, kill, dryRun bool) (res UserResult, run func() UserResult) {
	minUID := e.minUID.Load()
	if why := e.floor(uidTarget(TargetUser, uid), minUID); why != "" {
		return UserResult{Outcome: Skipped, Reason: protected(why)}, nil
	}
	if dryRun {
		what := "kill those not protected and resume the protected ones"
		if !kill {
			what = "resume the protected ones"
		}
		return UserResult{Outcome: WouldDo, Reason: fmt.Sprintf("would stop every process of uid %d, %s", uid, what)}, nil
	}
	return UserResult{}, func() UserResult {
		return e.sweepUser(e.host().newUser(e, uid, gid), uid, minUID, spare, kill)
	}
}

// hostUser is userOS on the host.
type hostUser struct {
	e        *Enforcer
	uid, gid uint32
	deadline time.Time

	continued, failed int // helper runs found stopped and continued; helper runs that failed
}

func (h *hostUser) interference() string {
	if h.continued == 0 && h.failed == 0 {
		return ""
	}
	return fmt.Sprintf("helpers found stopped and continued %d time(s), failed %d time(s)", h.continued, h.failed)
}

func newHostUser(e *Enforcer, uid, gid uint32) *hostUser {
	return &hostUser{e: e, uid: uid, gid: gid, deadline: time.Now().Add(sweepBudget)}
}

func (h *hostUser) expired() bool { return time.Now().After(h.deadline) }

func (h *hostUser) stopAll() (bool, error) {
	run, err := h.e.runHelperWatched(HelperSignalUser, strconv.FormatUint(uint64(h.uid), 10), strconv.FormatUint(uint64(h.gid), 10), "STOP")
	h.continued += run.continued
	if err != nil {
		h.failed++
	}
	return run.none, err
}

// list leaves out guardd's own helpers (a process cap being set as the
// user, say): guardd's children, which the watcher continues when they are
// stopped, and no customer process can be.
func (h *hostUser) list() ([]userProc, error) {
	procs, err := listUser(h.uid)
	return slices.DeleteFunc(procs, func(p userProc) bool { return p.PPID == h.e.self }), err
}

func (h *hostUser) read(pid int32) (*platform.Process, error) {
	return platform.ReadProcess(pid, h.e.Accounts)
}

func (h *hostUser) signal(id platform.ProcID, sig string) error {
	hd, err := signal(id, sig)
	hd.close()
	return err
}

func (h *hostUser) pause() { time.Sleep(sweepPause) }
