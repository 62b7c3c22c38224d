package storms

import "github.com/guardd/guardd/policy"

// The fork-storm capability's variable: the fork rate its observer counts
// from the kernel's process events (proc.children and proc.zombie_children
// are the sampler's, in policy; the limits blocks are still there too).

func init() {
	policy.DefineNumber("user.forks_per_sec", policy.UserLevel, "new processes of the user over the last second, from the kernel's process events (where those are unavailable, only the new processes that 100 ms scans of /proc catch)",
		func(e *policy.Env) float64 { return e.User.ForksPerSec })
}
