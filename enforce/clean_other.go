//go:build !linux

package enforce

import "github.com/guardd/guardd/platform"

// cleanTrees is not implemented on this OS yet: it needs openat2-like
// resolution (FreeBSD: O_RESOLVE_BENEATH and a mount check per directory).
func (e *Enforcer) cleanTrees(Clean) CleanResult {
	return CleanResult{Outcome: Failed, Reason: platform.ErrUnsupported.Error()}
}
