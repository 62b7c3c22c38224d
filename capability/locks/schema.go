package locks

import "github.com/guardd/guardd/policy"

// The lock capability's policy schema: the variables of file locks
// (/proc/locks), filled in by Observe. A wait is measured from when
// guardd first saw the blocked request: the kernel keeps no timestamps.

func init() {
	policy.DefineNumber("proc.lock_wait_seconds", policy.ProcLevel, "how long the process has been blocked on a file lock (flock, POSIX, OFD, lease), seconds, as guardd has seen it (0 when not waiting)",
		func(e *policy.Env) float64 { return e.Proc.LockWait.Seconds() })
	policy.DefineNumber("proc.locks_held", policy.ProcLevel, "file locks the process holds (`/proc/locks` entries)",
		func(e *policy.Env) float64 { return float64(e.Proc.LocksHeld) })
	policy.DefineNumber("proc.lock_blocking", policy.ProcLevel, "processes waiting on file locks this process holds (directly or queued behind another waiter)",
		func(e *policy.Env) float64 { return float64(e.Proc.LockBlocking) })
	policy.DefineNumber("proc.lock_blocking_seconds", policy.ProcLevel, "the longest wait among those processes, seconds (0 when none waits)",
		func(e *policy.Env) float64 { return e.Proc.LockBlockingFor.Seconds() })
	policy.DefineNumber("proc.lock_blocking_others", policy.ProcLevel, "processes of other uids waiting on file locks this process holds",
		func(e *policy.Env) float64 { return float64(e.Proc.LockBlockingOthers) })
	policy.DefineNumber("proc.lock_blocking_others_seconds", policy.ProcLevel, "the longest wait of those processes of other uids, seconds (0 when none waits)",
		func(e *policy.Env) float64 { return e.Proc.LockBlockingOthersFor.Seconds() })
	policy.DefineNumber("proc.lock_foreign", policy.ProcLevel, "file locks this process holds, with processes waiting on them, on files another uid owns (flock(2) works on a read-only descriptor)",
		func(e *policy.Env) float64 { return float64(e.Proc.LockForeign) })
	policy.DefineNumber("proc.lock_foreign_seconds", policy.ProcLevel, "the longest wait on those locks, seconds (0 when none)",
		func(e *policy.Env) float64 { return e.Proc.LockForeignFor.Seconds() })
	policy.DefineNumber("user.lock_waiters", policy.UserLevel, "processes of the user blocked on a file lock",
		func(e *policy.Env) float64 { return float64(e.User.LockWaiters) })
}
