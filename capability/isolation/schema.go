package isolation

import "github.com/guardd/guardd/policy"

// The isolation capability's policy schema: the variables of a customer's
// group, filled in by Observe. (The limits blocks it applies are still the
// language's, in policy, with the fork-storm caps.)

func init() {
	policy.DefineNumber("user.cpu_throttled_percent", policy.UserLevel, "share of the last tick's CPU periods in which the customer's group was held back by its `cpu` limit, percent (0 without per-customer isolation)",
		func(e *policy.Env) float64 { return e.User.Group.CPUThrottledPercent })
	policy.DefineNumber("user.memory_mb", policy.UserLevel, "memory of the customer's group, page cache included, MiB (0 without per-customer isolation: see user.rss_mb)",
		func(e *policy.Env) float64 { return float64(e.User.Group.MemoryBytes) / (1 << 20) })
	policy.DefineNumber("user.memory_faults", policy.UserLevel, "times over the last tick the customer's group hit its `memory` limit (reclaim at the high mark, the max, OOM kills inside the group)",
		func(e *policy.Env) float64 { return e.User.Group.MemoryFaults })
	policy.DefineNumber("user.procs_faults", policy.UserLevel, "forks the kernel refused the customer over the last tick because of `procs` (pids limit of the group)",
		func(e *policy.Env) float64 { return e.User.Group.ProcsFaults })
	policy.DefineNumber("user.io_throttled_seconds", policy.UserLevel, "seconds over the last tick in which every process of the customer's group waited on IO, its io limits included (PSI io \"full\" of the group; cgroup v2 only, 0 elsewhere)",
		func(e *policy.Env) float64 { return e.User.Group.IOThrottledSeconds })
	policy.DefineNumber("user.cpu_pressure", policy.UserLevel, "percent of the last 10 s some process of the customer waited for CPU (PSI of the group; cgroup v2 only, 0 elsewhere)",
		func(e *policy.Env) float64 { return e.User.Group.CPUPressure })
	policy.DefineNumber("user.memory_pressure", policy.UserLevel, "percent of the last 10 s some process of the customer stalled on memory (PSI of the group; cgroup v2 only, 0 elsewhere)",
		func(e *policy.Env) float64 { return e.User.Group.MemoryPressure })
	policy.DefineNumber("user.io_pressure", policy.UserLevel, "percent of the last 10 s some process of the customer stalled on IO (PSI of the group; cgroup v2 only, 0 elsewhere)",
		func(e *policy.Env) float64 { return e.User.Group.IOPressure })
}
