package enforce

import (
	"fmt"

	"github.com/guardd/guardd/platform"
)

// The door: every entry point of this package that changes the host asks
// floor first, with the target it was handed, and only then touches the
// OS (doc.go has the whole contract).

// Kinds of target an entry point takes.
const (
	TargetProcess = "process" // pid + start time (+ uid and euid once read)
	TargetUser    = "user"    // every process of a uid
	TargetTree    = "tree"    // a uid's files under temp trees
	TargetSocket  = "socket"  // one socket of a uid, by cookie
)

// Reasons the floor refuses a target. A system uid says which min_uid
// applied: "system uid (below 1000)".
const (
	FloorPID1   = "pid 1"
	FloorSelf   = "guardd itself or its ancestor"
	FloorKernel = "kernel thread"
	FloorUID0   = "uid 0"
	floorSystem = "system uid (below %d)"
)

// target is what an entry point is asked to act on, as far as the floor
// needs to know it.
type target struct {
	kind string
	pid  int32 // process only; 0 there means pid 0, which is refused too
	// uid, euid: the target's real and effective uid. A user, tree or
	// socket has one uid: pass it as both.
	uid, euid uint32
	kernel    bool // process only: a kernel thread
	known     bool // process only: uid, euid and kernel were read (else only the pid is judged)
}

func procTarget(pid int32) target { return target{kind: TargetProcess, pid: pid} }

func freshTarget(p *platform.Process) target {
	return target{kind: TargetProcess, pid: p.PID, uid: p.UID, euid: p.EUID, kernel: p.Kernel, known: true}
}

func uidTarget(kind string, uid uint32) target {
	return target{kind: kind, uid: uid, euid: uid, known: true}
}

// floor is the protection no policy can lift (DESIGN.md §4, rule 1): why
// t is refused, or "". It reads min_uid atomically (a reload sets it
// beside the timers and the sweeps) and applies the stricter of it and
// atLeast, the value a caller read when it decided (0: none). It touches
// nothing of the OS: guardd's ancestors were read once, in New.
func (e *Enforcer) floor(t target, atLeast uint32) string {
	minUID := max(atLeast, e.minUID.Load())
	if t.kind == TargetProcess {
		switch {
		case t.pid <= 1:
			return FloorPID1
		case e.Exempt(t.pid):
			return FloorSelf
		case !t.known:
			return ""
		case t.kernel:
			return FloorKernel
		}
	}
	switch {
	case t.uid == 0 || t.euid == 0:
		return FloorUID0
	case t.uid < minUID || t.euid < minUID:
		return fmt.Sprintf(floorSystem, minUID)
	}
	return ""
}

// protected is the audit reason of a floored target.
func protected(why string) string { return "protected: " + why }
