// Package storms is the capability of fork storms, process caps,
// whole-user signals and zombies.
//
// It observes process events (fork, exec, exit, uid change) from the
// kernel's proc connector, or from listing the process table where there
// is none, and keeps per-user live-process counts and fork rates between
// ticks (platform.Tracker): it gives the users of each sample their
// user.forks_per_sec, and lends the daemon's user-rules fast path its
// counts (capability.UserCounter), waking it when a watched user forks
// hard. New processes of accounts under a `limits` block get their
// RLIMIT_NPROC cap as they appear (enforce.SetProcCap, or the helper
// running as the user where guardd lacks CAP_SYS_RESOURCE); monitor mode
// sets none.
//
// Its steps: kill_user (kill(-1) as the user, or, where the user has a
// process the policy may protect, a sweep that spares it: the protect
// index remembers such users from each sample, and the sweep runs beside
// the loop through Host.Detach), stop_user, resume_user, and reap (SIGCHLD
// to the zombies' parents, ended after the grace). stop_user's
// resume_after is kept by the resumer, which saves pending resumes in
// state_dir (resume.json) so that a restart resumes them, and resumes
// every frozen user when guardd stops. The variable it fills in is
// user.forks_per_sec (user.procs and user.zombies come from the sample).
//
// It defines user.forks_per_sec (schema.go); the rest of its policy schema
// (the limits block, the steps and their arguments) is still declared in
// package policy.
package storms
