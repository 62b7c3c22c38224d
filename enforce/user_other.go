//go:build !linux && !freebsd

package enforce

import "github.com/guardd/guardd/platform"

// Helper commands (see user_linux.go).
const (
	HelperSignalUser = "_signal-user"
	HelperProcCap    = "_proc-cap"
)

// UserResult is what came of a whole-user action.
type UserResult struct {
	Outcome string
	Reason  string
}

// SignalUser is not implemented on this OS yet.
func (e *Enforcer) SignalUser(uid, gid uint32, sig string, dryRun bool) UserResult {
	return UserResult{Outcome: Failed, Reason: platform.ErrUnsupported.Error()}
}

// Spare says which of a user's processes kill_user and stop_user leave
// running (sweep.go).
type Spare struct {
	Candidate func(exe string, euid uint32) bool
	Protected func(fresh *platform.Process) string
}

// KillUser is not implemented on this OS yet.
func (e *Enforcer) KillUser(uid, gid uint32, spare *Spare, dryRun bool) UserResult {
	return UserResult{Outcome: Failed, Reason: platform.ErrUnsupported.Error()}
}

// StopUser is not implemented on this OS yet.
func (e *Enforcer) StopUser(uid, gid uint32, spare *Spare, dryRun bool) UserResult {
	return UserResult{Outcome: Failed, Reason: platform.ErrUnsupported.Error()}
}

// RunHelper is not implemented on this OS yet.
func RunHelper(args []string) int { return 1 }

// SetProcCap is not implemented on this OS yet.
func (e *Enforcer) SetProcCap(platform.ProcID, uint32, int) error { return platform.ErrUnsupported }

// ProcCapAsUser is not implemented on this OS yet.
func (e *Enforcer) ProcCapAsUser(uid, gid uint32, n int, pids []int32) error {
	return platform.ErrUnsupported
}

func (e *Enforcer) reap(Action, uint32) (string, error) { return "", platform.ErrUnsupported }
