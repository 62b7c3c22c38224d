//go:build linux

package tests

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkLockWaitKill measures the time from a lock wait passing its
// limit to the waiter being killed, with the real daemon at its default
// 1s interval: a holder sleeps on an flock, a waiter blocks on it, the rule
// kills waiters blocked longer than 2s. The latency runs from the moment
// the waiter has waited 2s (counted from its "ready", printed right
// before it blocks) to its exit; guardd starts the clock when it first
// sees the wait, so the latency includes up to one interval of first
// sight plus up to one of evaluation. The peer figure beside it is that
// bound, two intervals: what any /proc/locks poller at 1s achieves at
// worst.
//
//	go test -run '^$' -bench LockWaitKill -benchtime 10x ./tests/
func BenchmarkLockWaitKill(b *testing.B) {
	const limit = 2 * time.Second
	u := NewUser(b)
	dir := SharedDir(b)
	g := StartGuarddConfig(b, Config{Interval: "1s", Body: Class(u) + `rule "lock-waiter" {
  class = "c"
  when  = proc.lock_wait_seconds > 2
  kill {
    signal = "KILL"
  }
}
`})
	var total, worst time.Duration
	i := 0
	b.ResetTimer()
	for b.Loop() {
		file := filepath.Join(dir, "l"+strconv.Itoa(i))
		i++
		holder := StartOffender(b, u, "lock-hold", file)
		waiter := StartOffender(b, u, "lock-wait", file)
		due := time.Now().Add(limit)
		select {
		case <-waiter.Done():
		case <-time.After(Deadline):
			b.Fatalf("waiter %d not killed after %s; log:\n%s", waiter.PID, Deadline, g.Log())
		}
		lat := time.Since(due)
		total += lat
		worst = max(worst, lat)
		holder.Kill()
		<-holder.Done()
	}
	b.StopTimer()
	mean := total / time.Duration(b.N)
	bound := 2 * time.Second
	b.ReportMetric(float64(mean)/float64(time.Millisecond), "latency-ms")
	b.ReportMetric(float64(worst)/float64(time.Millisecond), "worst-ms")
	b.ReportMetric(float64(bound)/float64(time.Millisecond), "bound-ms")
	b.ReportMetric(float64(mean)/float64(bound), "ratio")
	b.Logf("lock wait past its limit → waiter killed: mean %s, worst %s over %d waits (bound at a 1s interval: %s)", mean, worst, b.N, bound)
}
