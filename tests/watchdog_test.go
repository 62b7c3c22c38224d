//go:build linux

package tests

import (
	"strings"
	"testing"
	"time"
)

// TestWatchdogIndependentOfInterval: with `interval = "40s"` and a
// watchdog of 2 s (WatchdogSec=2s), guardd still pings at least every
// second (WATCHDOG_USEC/2) from its loop: systemd would otherwise kill it
// between two ticks. The control is the interval itself: no tick falls
// in the window, so every ping comes from the heartbeat.
func TestWatchdogIndependentOfInterval(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	ns := newNotifySocket(t)
	StartGuarddConfig(t, Config{
		Interval: "40s",
		Body:     Class(u) + reniceRule("hog", ""),
		Env:      []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=2000000"},
	})
	ns.wait(t, "READY=1")
	const window = 8 * time.Second // within the first 40 s: no tick but the first
	const maxGap = time.Second     // WATCHDOG_USEC/2
	last := time.Now()
	end := last.Add(window)
	pings := 0
	for time.Now().Before(end) {
		select {
		case m, ok := <-ns.msgs:
			if !ok {
				t.Fatal("notify socket closed")
			}
			if !strings.Contains(m, "WATCHDOG=1") {
				continue
			}
			now := time.Now()
			if gap := now.Sub(last); gap > maxGap {
				t.Errorf("watchdog ping %s after the previous one, want at most %s", gap.Round(time.Millisecond), maxGap)
			}
			last = now
			pings++
		case <-time.After(time.Until(end)):
		}
	}
	if gap := time.Since(last); gap > maxGap {
		t.Errorf("no watchdog ping in the last %s of the window", gap.Round(time.Millisecond))
	}
	if pings < int(window/maxGap) {
		t.Errorf("%d watchdog pings in %s, want at least %d", pings, window, int(window/maxGap))
	}
}
