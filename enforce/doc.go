// Package enforce is the door: the one place where guardd changes the
// host. No other package sends a signal, changes a priority or a limit,
// removes a file or closes a socket.
//
// Every entry point checks in the same order:
//
//  1. the floor (door.go, floor): a target is refused when it is uid 0
//     (real or effective), below min_uid (read atomically; a caller on
//     another goroutine may pass the stricter value it decided with),
//     pid 1 (or 0), guardd itself or one of its ancestors (the chain
//     read once in New; a re-parented guardd keeps it), or a kernel
//     thread. One reason text per case (FloorUID0, FloorPID1, FloorSelf,
//     FloorKernel, "system uid (below N)"), audited as "protected: …".
//     What is known from the pid alone is judged before /proc is read;
//  2. the identity re-check: the process read afresh (pid + start time),
//     the floor again on what was read, then the caller's Check (the
//     policy's protection);
//  3. dry-run, a per-call argument, checked once, here (clean_tmp's walk
//     runs in dry-run too, to count, and removes nothing);
//  4. the act, through a pidfd where the OS has them (else the identity
//     is re-read right before each signal, and the audit line says so);
//  5. the journal: the entry point returns what it did (Result,
//     UserResult, CleanResult) and the caller writes it to the audit log
//     before reporting it; follow-ups (a SIGKILL after a grace, a reap)
//     come back through OnFollowUp and pass the floor again.
//
// Entry points and their targets:
//
//	Do(Action)            a process: pid + start time (renice, stop, kill, reap, report)
//	SetProcCap            a process: pid + start time + the uid the caller saw
//	SignalUser            a user: uid (kill(-1) as the user, through the helper)
//	KillUser, StopUser,   a user: uid; then each of its processes (pid, euid)
//	PrepareUserSweep        through the floor and the caller's Spare
//	ProcCapAsUser         a user: uid, and each pid it is handed
//	CleanTmp              a path tree: uid + the trees (Clean.Dirs)
//	CloseSocket           a socket: uid + cookie
//	EnsureGroup,          a customer's group: uid (groups.go; the driver is
//	  FreezeGroup, …        SetGroups'), and for Freeze and Kill each member
//	PlaceInGroup          a group's uid, then a process: pid + start time
//
// What the entry points do to the host once a target passed goes through
// doorOS (door_host.go); tests swap in a fake there. The bind and listen hooks
// (bindhook*.go) are kernel programs, not actions on a target: the
// program itself never refuses uid 0 or a uid below min_uid.
//
// The escalation ledger (ledger.go) lives here too.
package enforce
