//go:build linux

package tests

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkDaemonReportingCost runs the real daemon twice against 1,000
// processes that a rule reports on every tick (1,000 actions per 1 s
// tick): once with nothing but the audit log (the peer), once with the
// spool, a webhook on loopback, metrics and host summaries. It reports
// the CPU per tick of each and their ratio: what telling costs the
// daemon, its goroutines included (delivery never runs in the loop).
//
//	go test -run='^$' -bench=DaemonReportingCost -benchtime=1x ./tests/
func BenchmarkDaemonReportingCost(b *testing.B) {
	u := NewUser(b)
	spawnSleepers(b, u, 1000)
	rule := Class(u) + `rule "every-tick" {
  class    = "c"
  when     = proc.comm == "sleep"
  cooldown = "0s"
  report {}
}
`
	dir := b.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("k"), 0o600)
	col := NewCollector(b, []byte("k"))
	col.Listen(b, http.StatusOK)
	metrics := FreeAddr(b)
	telling := rule + webhookReport("http://"+col.Addr+"/hook", secretFile, fmt.Sprintf("  metrics {\n    listen = %q\n  }\n", metrics))

	// GUARDD_BENCH_CPUPROFILE=FILE: CPU profiles of both runs, in
	// FILE.audit-only and FILE.reporting.
	measure := func(body, name string) (cpuPerTick float64, events int) {
		var flags []string
		if f := os.Getenv("GUARDD_BENCH_CPUPROFILE"); f != "" {
			flags = []string{"--cpuprofile", f + "." + name}
		}
		g := StartGuarddConfig(b, Config{Interval: "1s", Body: body, Flags: flags})
		pid := g.Cmd.Process.Pid
		time.Sleep(5 * time.Second) // discovery, first escalations
		before := len(auditLines(b, g.AuditPath))
		cpu0, t0 := procCPU(b, pid), time.Now()
		time.Sleep(15 * time.Second)
		cpu1, t1 := procCPU(b, pid), time.Now()
		events = len(auditLines(b, g.AuditPath)) - before
		g.Stop(b)
		return float64(cpu1-cpu0) / float64(time.Millisecond) / t1.Sub(t0).Seconds(), events
	}
	for b.Loop() {
		peer, peerEvents := measure(rule, "audit-only")
		ours, ourEvents := measure(telling, "reporting")
		delivered := 0
		for _, e := range col.Events() {
			if e.Kind == "audit" {
				delivered++
			}
		}
		b.ReportMetric(peer, "audit-only-cpu-ms/tick")
		b.ReportMetric(ours, "reporting-cpu-ms/tick")
		b.ReportMetric(ours/peer, "reporting/audit-only")
		b.ReportMetric(float64(ourEvents)/15, "actions/s")
		b.Logf("audit only: %.1f ms CPU per tick (%d actions in 15 s); with spool, webhook, metrics and summaries: %.1f ms (%d actions, %d delivered in all): ratio %.3f",
			peer, peerEvents, ours, ourEvents, delivered, ours/peer)
		if delivered == 0 {
			b.Error("nothing was delivered")
		}
	}
}
