//go:build linux

package enforce_test

import (
	"testing"

	"github.com/guardd/guardd/enforce"
	"golang.org/x/sys/unix"
)

// BenchmarkRenice is one renice of a helper process (the Go runtime's
// threads, about five), through Do: re-read, floor, pidfd, every thread.
func BenchmarkRenice(b *testing.B) {
	if unix.Geteuid() != 0 {
		b.Skip("needs root: runs its target as a throwaway user")
	}
	holdUsersLock(b)
	u := newTestUser(b)
	id := procID(b, startHelper(b, u, helperBinary(b)).pid)
	e := enforce.New(1000, nil, nil)
	b.ResetTimer()
	for i := range b.N {
		if r := e.Do(enforce.Action{Kind: enforce.ActRenice, Target: id, Nice: 10 + i%10}); r.Outcome != enforce.Done {
			b.Fatalf("renice: %s (%s)", r.Outcome, r.Reason)
		}
	}
}
