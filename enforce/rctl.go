package enforce

import (
	"strconv"
	"strings"
)

// FreeBSD's resource limits (rctl(8), RACCT/RCTL: kernels with
// kern.racct.enable=1) cap a user's processes with one rule,
// user:UID:maxproc:deny=N, instead of an RLIMIT_NPROC on every process.
// The kernel's rule parser takes the numeric uid (rctl(8) turns names into
// uids before the system call). These helpers build and read the rule
// strings; they have no build tag so they are tested everywhere.

// rctlMaxprocFilter selects the maxproc deny rules of uid.
func rctlMaxprocFilter(uid uint32) string {
	return "user:" + strconv.FormatUint(uint64(uid), 10) + ":maxproc:deny"
}

// rctlMaxprocRule is the rule that caps uid at n processes.
func rctlMaxprocRule(uid uint32, n int) string {
	return rctlMaxprocFilter(uid) + "=" + strconv.Itoa(n)
}

// rctlCapAtMost reports whether the rules rctl_get_rules(2) returned for
// rctlMaxprocFilter(uid) (comma-separated, "user:1001:maxproc:deny=200",
// perhaps with a "/user" per-suffix) already cap uid at n processes or
// fewer: then adding guardd's rule would change nothing, and the kernel
// replaces a deny rule of the same subject and resource when one is added,
// which must never loosen an admin's stricter rule.
func rctlCapAtMost(rules string, uid uint32, n int) bool {
	prefix := rctlMaxprocFilter(uid) + "="
	for r := range strings.SplitSeq(rules, ",") {
		amount, ok := strings.CutPrefix(strings.TrimSpace(r), prefix)
		if !ok {
			continue
		}
		amount, _, _ = strings.Cut(amount, "/")
		v, err := strconv.ParseInt(amount, 10, 64)
		if err == nil && v >= 0 && v <= int64(n) {
			return true
		}
	}
	return false
}
