package enforce

// Per-customer groups: the door for them, and the cgroup filesystem
// drivers (groups_linux.go).
//
// Layout. guardd's groups nest under guardd's own group of each
// hierarchy (never elsewhere: a subtree guardd did not create is not its
// to change), in a base group whose name the caller gives:
//
//	<own>/<base>/u<UID>/work   the customer's processes: Freeze, Thaw and Kill act here
//	<own>/<base>/u<UID>/kept   its protected processes (an sshd session): they count
//	                           against the limits of u<UID>, and are never frozen or killed
//	<own>/guardd               v2 only, when guardd's own group held processes and
//	                           controllers had to be enabled below it (see below)
//
// On v1 the same tree is made in each hierarchy guardd uses (cpu, cpuacct,
// memory, pids, blkio, freezer; co-mounted ones once) and a process is
// written to the leaf of every one of them.
//
// Files written (a zero Limits field writes the unlimited value):
//
//	v2 <own>/cgroup.subtree_control, <base>/cgroup.subtree_control
//	                            "+cpu", "+memory", "+pids", "+io" (those the own group has)
//	   u<UID>/cpu.max           "QUOTA 100000" (CPUPercent% of one core per 100 ms) | "max 100000"
//	   u<UID>/memory.high       90 % of MemoryBytes | "max" (written before memory.max)
//	   u<UID>/memory.max        MemoryBytes | "max"
//	   u<UID>/pids.max          Pids | "max"
//	   u<UID>/io.max            "MAJ:MIN rbps=N wbps=N" per device, "max" for 0; a device
//	                            no longer listed gets "rbps=max wbps=max"
//	   work|kept/cgroup.procs   the pid (all of its threads move with it)
//	   work/cgroup.freeze       "1" | "0", then cgroup.events "frozen 1" | "frozen 0" awaited
//	   work/cgroup.kill         "1", then cgroup.events "populated 0" awaited
//	v1 cpu    u<UID>/cpu.cfs_period_us 100000, cpu.cfs_quota_us QUOTA | -1
//	   memory u<UID>/memory.limit_in_bytes MemoryBytes | -1, memory.soft_limit_in_bytes 90 % | -1
//	          (memory.use_hierarchy 1 on each new group where the kernel still has it at 0)
//	   pids   u<UID>/pids.max Pids | "max"
//	   blkio  u<UID>/blkio.throttle.read_bps_device, …write_bps_device "MAJ:MIN N" (0 removes)
//	   every  work|kept/cgroup.procs the pid
//	   freezer work/freezer.state FROZEN | THAWED, re-read until it says so
//	   Kill: freeze, SIGKILL every pid of work/cgroup.procs through a pidfd, thaw, until empty
//
// Every entry point of the door below passes the floor first: the group
// of uid 0 or of a uid below min_uid is never created, changed, frozen or
// killed, and a process is placed only when it passes the floor as a
// process too (so never guardd, its ancestors, pid 1, a kernel thread or
// a process running with euid 0).

import (
	"errors"
	"fmt"
	"strings"

	"github.com/guardd/guardd/platform"
)

// TargetGroup is a customer's group: a uid.
const TargetGroup = "group"

// Limits are what a customer's group may use. Zero is unlimited.
type Limits struct {
	CPUPercent  uint32    // percent of one core (250: two and a half cores), throttled
	MemoryBytes uint64    // memory.max; reclaim pressure starts at 90 % of it
	Pids        uint32    // processes and threads
	IO          []IOLimit // per block device
}

// IOLimit is a bandwidth limit on one block device.
type IOLimit struct {
	Major, Minor      uint32
	ReadBPS, WriteBPS uint64 // bytes per second; 0: unlimited
}

func (l Limits) String() string {
	var parts []string
	if l.CPUPercent > 0 {
		parts = append(parts, fmt.Sprintf("cpu %d%%", l.CPUPercent))
	}
	if l.MemoryBytes > 0 {
		parts = append(parts, fmt.Sprintf("memory %d bytes", l.MemoryBytes))
	}
	if l.Pids > 0 {
		parts = append(parts, fmt.Sprintf("procs %d", l.Pids))
	}
	for _, d := range l.IO {
		parts = append(parts, fmt.Sprintf("io %d:%d read %d write %d bytes/s", d.Major, d.Minor, d.ReadBPS, d.WriteBPS))
	}
	if len(parts) == 0 {
		return "no limits"
	}
	return strings.Join(parts, ", ")
}

// GroupDriver makes and drives the customers' groups: the cgroup v2 and
// v1 filesystems (groups_linux.go), later systemd's D-Bus API. It
// applies no floor and no dry-run: call it through the Enforcer's
// *Group methods, which do. Methods are safe for concurrent use on
// different uids.
type GroupDriver interface {
	// Name says which driver this is ("cgroup2", "cgroup1").
	Name() string
	// Ensure creates the group of uid and its two leaves if missing and
	// sets its limits (all of them: a zero field lifts that limit).
	Ensure(uid uint32, l Limits) error
	// Place moves a process (every thread of it) into the work leaf of
	// uid's group, or into kept. It re-checks the process's identity
	// right before and after the write; platform.ErrGone when it exited.
	// The group must have been Ensured.
	Place(p platform.ProcID, uid uint32, kept bool) error
	// Freeze stops every process of the work leaf, and returns once the
	// kernel says they are all frozen (bounded). Thaw undoes it.
	Freeze(uid uint32) error
	Thaw(uid uint32) error
	// Kill ends every process of the work leaf, kept spared, and returns
	// how many there were, once the leaf is empty (bounded).
	Kill(uid uint32) (int, error)
	// Members lists the pids in the work and kept leaves.
	Members(uid uint32) (work, kept []int32, err error)
	// Remove deletes uid's group; it fails, touching nothing more, while
	// a process is in it. A group that does not exist is no error.
	Remove(uid uint32) error
	// Close releases what the driver holds; the groups stay.
	Close() error
}

// ErrNoGroups: the door was given no group driver (SetGroups).
var ErrNoGroups = errors.New("no group driver")

// SetGroups gives the door its group driver. Call it before any *Group
// entry point (guardd's start-up; a test).
func (e *Enforcer) SetGroups(d GroupDriver) { e.groups = d }

// Groups is the driver SetGroups gave, for reads (Members); nil if none.
func (e *Enforcer) Groups() GroupDriver { return e.groups }

// groupDoor is the common prologue of the uid entry points: the floor
// and the driver, then dry-run.
func (e *Enforcer) groupDoor(uid uint32, dry bool, what string) (GroupDriver, *Result) {
	if why := e.floor(uidTarget(TargetGroup, uid), 0); why != "" {
		return nil, &Result{Outcome: Skipped, Reason: protected(why)}
	}
	if e.groups == nil {
		return nil, &Result{Outcome: Failed, Reason: ErrNoGroups.Error()}
	}
	if dry {
		return nil, &Result{Outcome: WouldDo, Reason: what}
	}
	return e.groups, nil
}

func groupResult(err error, note string) Result {
	if err != nil {
		return Result{Outcome: Failed, Reason: err.Error()}
	}
	return Result{Outcome: Done, Reason: note}
}

// EnsureGroup creates uid's group if missing and sets its limits.
func (e *Enforcer) EnsureGroup(uid uint32, l Limits, dry bool) Result {
	what := fmt.Sprintf("group u%d: %s", uid, l)
	d, r := e.groupDoor(uid, dry, what)
	if r != nil {
		return *r
	}
	return groupResult(d.Ensure(uid, l), what)
}

// PlaceInGroup moves a process of uid into its group: the work leaf, or
// kept for a protected process. The order is Do's: the floor on the
// group and on the pid, the identity re-check with the floor on what was
// read (its real uid must be uid), dry-run, then the driver, which checks
// the identity once more right before it writes.
func (e *Enforcer) PlaceInGroup(p platform.ProcID, uid uint32, kept, dry bool) Result {
	leaf := leafName(kept)
	if why := e.floor(uidTarget(TargetGroup, uid), 0); why != "" {
		return Result{Outcome: Skipped, Reason: protected(why)}
	}
	if why := e.floor(procTarget(p.PID), 0); why != "" {
		return Result{Outcome: Skipped, Reason: protected(why)}
	}
	fresh, err := e.host().readProcess(e, p.PID)
	switch {
	case errors.Is(err, platform.ErrGone):
		return Result{Outcome: Skipped, Reason: "process exited"}
	case err != nil:
		return Result{Outcome: Failed, Reason: "re-read: " + err.Error()}
	case fresh.StartTime != p.StartTime:
		return Result{Outcome: Skipped, Reason: fmt.Sprintf("process exited; pid %d now names another process", p.PID)}
	}
	if why := e.floor(freshTarget(fresh), 0); why != "" {
		return Result{Outcome: Skipped, Reason: protected(why), Proc: fresh}
	}
	if fresh.UID != uid {
		return Result{Outcome: Skipped, Reason: fmt.Sprintf("process runs as uid %d, not %d", fresh.UID, uid), Proc: fresh}
	}
	if e.groups == nil {
		return Result{Outcome: Failed, Reason: ErrNoGroups.Error(), Proc: fresh}
	}
	what := fmt.Sprintf("place pid %d in u%d/%s", p.PID, uid, leaf)
	if dry {
		return Result{Outcome: WouldDo, Reason: what, Proc: fresh}
	}
	err = e.groups.Place(p, uid, kept)
	if errors.Is(err, platform.ErrGone) {
		return Result{Outcome: Skipped, Reason: "process exited", Proc: fresh}
	}
	r := groupResult(err, what)
	r.Proc = fresh
	return r
}

// FreezeGroup stops every process in uid's work leaf.
func (e *Enforcer) FreezeGroup(uid uint32, dry bool) Result {
	what := fmt.Sprintf("freeze u%d/work", uid)
	d, r := e.groupDoor(uid, dry, what)
	if r != nil {
		return *r
	}
	if r := e.exemptMember(d, uid); r != nil {
		return *r
	}
	return groupResult(d.Freeze(uid), what)
}

// ThawGroup resumes uid's work leaf.
func (e *Enforcer) ThawGroup(uid uint32, dry bool) Result {
	what := fmt.Sprintf("thaw u%d/work", uid)
	d, r := e.groupDoor(uid, dry, what)
	if r != nil {
		return *r
	}
	return groupResult(d.Thaw(uid), what)
}

// KillGroup ends every process in uid's work leaf; kept is spared.
func (e *Enforcer) KillGroup(uid uint32, dry bool) Result {
	d, r := e.groupDoor(uid, dry, fmt.Sprintf("kill u%d/work", uid))
	if r != nil {
		return *r
	}
	if r := e.exemptMember(d, uid); r != nil {
		return *r
	}
	n, err := d.Kill(uid)
	return groupResult(err, fmt.Sprintf("killed u%d/work: %d processes", uid, n))
}

// RemoveGroup deletes uid's group once it is empty.
func (e *Enforcer) RemoveGroup(uid uint32, dry bool) Result {
	what := fmt.Sprintf("remove group u%d", uid)
	d, r := e.groupDoor(uid, dry, what)
	if r != nil {
		return *r
	}
	return groupResult(d.Remove(uid), what)
}

// exemptMember refuses to freeze or kill a work leaf that holds pid 1,
// guardd or one of its ancestors: placement never puts them there, so one
// found there means something else wrote the group, and the whole-group
// act would reach them.
func (e *Enforcer) exemptMember(d GroupDriver, uid uint32) *Result {
	work, _, err := d.Members(uid)
	if err != nil {
		return &Result{Outcome: Failed, Reason: err.Error()}
	}
	for _, pid := range work {
		if why := e.floor(procTarget(pid), 0); why != "" {
			return &Result{Outcome: Skipped, Reason: protected(fmt.Sprintf("u%d/work holds pid %d (%s)", uid, pid, why))}
		}
	}
	return nil
}

func leafName(kept bool) string {
	if kept {
		return "kept"
	}
	return "work"
}
