//go:build freebsd

package enforce

import "github.com/guardd/guardd/platform"

// zombieChildren counts the zombie children of pid, from the process table
// (kern.proc.proc: FreeBSD has no per-process list of children to read).
func zombieChildren(pid int32) int {
	procs, err := platform.ListProcBriefs(false, 0)
	if err != nil {
		return 0
	}
	n := 0
	for _, p := range procs {
		if p.PPID == pid && p.State == 'Z' {
			n++
		}
	}
	return n
}
