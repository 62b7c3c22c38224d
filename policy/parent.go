package policy

import "github.com/guardd/guardd/platform"

// Where a process came from, for conditions: what a hosting server runs
// as the customer on purpose is told apart by its parents, never by a
// name the customer chooses. A root parent cannot be forged by a customer
// (proc.parent_uid == 0 with its executable), and a live login session is
// a process protected by `protect { exes }` among the ancestors, which
// needs a root master of its own (policy/protect.go).

func init() {
	DefineString("proc.parent_exe", ProcLevel, "executable path of the parent process, `\"\"` when unknown; trust it only with `proc.parent_uid == 0` (a customer's own process can run any executable)",
		func(e *Env) string {
			if pp := e.Proc.Parent; pp != nil && pp.PID == e.Proc.PPID {
				return pp.Exe
			}
			return ""
		})
	DefineNumber("proc.parent_uid", ProcLevel, "real uid of the parent process, -1 when unknown",
		func(e *Env) float64 {
			if pp := e.Proc.Parent; pp != nil && pp.PID == e.Proc.PPID {
				return float64(pp.UID)
			}
			return -1
		})
	DefineBool("proc.in_session", ProcLevel, "a process that `protect { exes }` protects (a login session's sshd, started by the root sshd) is among its first 8 ancestors: the shell of a live session and what runs under it; false once the session ends and the process is orphaned",
		func(e *Env) bool { return e.pol.inSession(e.Proc) })
}

// inSession reports whether a protected process is among proc's ancestors
// (at most maxProvenance of them). p may be nil (an Env built without a
// policy): then nothing is protected.
func (p *Policy) inSession(proc *platform.Process) bool {
	if p == nil {
		return false
	}
	child := proc
	for range maxProvenance {
		a := child.Parent
		if a == nil || a.PID != child.PPID || a.PID == 1 {
			return false
		}
		if _, v := p.protectedProcess(a); v.protected() {
			return true
		}
		child = a
	}
	return false
}
