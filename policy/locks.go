package policy

// Variables of file locks (/proc/locks). A wait is measured from when
// guardd first saw the blocked request: the kernel keeps no timestamps.

func init() {
	defNum("proc.lock_wait_seconds", lvProc, "how long the process has been blocked on a file lock (flock, POSIX, OFD, lease), seconds, as guardd has seen it (0 when not waiting)",
		func(e *Env) float64 { return e.Proc.LockWait.Seconds() })
	defNum("proc.locks_held", lvProc, "file locks the process holds (`/proc/locks` entries)",
		func(e *Env) float64 { return float64(e.Proc.LocksHeld) })
	defNum("proc.lock_blocking", lvProc, "processes waiting on file locks this process holds (directly or queued behind another waiter)",
		func(e *Env) float64 { return float64(e.Proc.LockBlocking) })
	defNum("proc.lock_blocking_seconds", lvProc, "the longest wait among those processes, seconds (0 when none waits)",
		func(e *Env) float64 { return e.Proc.LockBlockingFor.Seconds() })
	defNum("proc.lock_blocking_others", lvProc, "processes of other uids waiting on file locks this process holds",
		func(e *Env) float64 { return float64(e.Proc.LockBlockingOthers) })
	defNum("proc.lock_blocking_others_seconds", lvProc, "the longest wait of those processes of other uids, seconds (0 when none waits)",
		func(e *Env) float64 { return e.Proc.LockBlockingOthersFor.Seconds() })
	defNum("proc.lock_foreign", lvProc, "file locks this process holds, with processes waiting on them, on files another uid owns (flock(2) works on a read-only descriptor)",
		func(e *Env) float64 { return float64(e.Proc.LockForeign) })
	defNum("proc.lock_foreign_seconds", lvProc, "the longest wait on those locks, seconds (0 when none)",
		func(e *Env) float64 { return e.Proc.LockForeignFor.Seconds() })
	defNum("user.lock_waiters", lvUser, "processes of the user blocked on a file lock",
		func(e *Env) float64 { return float64(e.User.LockWaiters) })
}
