package enforce

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// benchLedger is a ledger of n escalations: process ones (a fork storm's
// or a long-runner's many processes) and some per user.
func benchLedger(n int) *Ledger {
	tm := &Timing{Cooldown: time.Hour, After: []time.Duration{0, time.Minute}}
	held := make([]Held, 0, n)
	for i := range n {
		k := Key{Rule: fmt.Sprintf("rule-%d", i%7), UID: uint32(1000 + i%300)}
		if i%10 != 0 {
			k.PID, k.StartTime = int32(10000+i), uint64(123456+i)
		}
		held = append(held, Held{Key: k, Timing: tm})
	}
	l := NewLedger()
	l.Advance(t0, held, func(string) *Timing { return tm })
	return l
}

// BenchmarkLedgerSave is one save of 10,000 escalations, without fsync
// (what a tick with changes pays, the disk aside).
func BenchmarkLedgerSave(b *testing.B) {
	l := benchLedger(10000)
	path := filepath.Join(b.TempDir(), "ledger.json")
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Save(path, "boot", t0, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLedgerSnapshot is what a save costs under the daemon's lock
// now: the copy; sorting, encoding and the disk come after the lock.
func BenchmarkLedgerSnapshot(b *testing.B) {
	l := benchLedger(10000)
	b.ReportAllocs()
	for b.Loop() {
		l.Snapshot("boot", t0)
	}
}
