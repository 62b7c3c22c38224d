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

// BenchmarkDaemonReportingCost runs two real daemons side by side against 1,000
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

	// Both daemons run at the same time, on the same processes: a
	// 2-core VM's speed drifts by more than the 5 % this measures between
	// one run and the next, but not between two processes side by side.
	// Profiles (profileFlags) go to FILE.audit-only and FILE.reporting.
	start := func(body, name string) *Guardd {
		return StartGuarddConfig(b, Config{Interval: "1s", Body: body, Flags: profileFlags(name)})
	}
	for b.Loop() {
		peerG, oursG := start(rule, "audit-only"), start(telling, "reporting")
		time.Sleep(5 * time.Second) // discovery, first escalations
		peerBefore, oursBefore := len(auditLines(b, peerG.AuditPath)), len(auditLines(b, oursG.AuditPath))
		peer0, ours0, t0 := procCPU(b, peerG.Cmd.Process.Pid), procCPU(b, oursG.Cmd.Process.Pid), time.Now()
		time.Sleep(20 * time.Second) // the measurement window
		peer1, ours1, t1 := procCPU(b, peerG.Cmd.Process.Pid), procCPU(b, oursG.Cmd.Process.Pid), time.Now()
		peerEvents := len(auditLines(b, peerG.AuditPath)) - peerBefore
		ourEvents := len(auditLines(b, oursG.AuditPath)) - oursBefore
		peerG.Stop(b)
		oursG.Stop(b)
		secs := t1.Sub(t0).Seconds()
		peer := float64(peer1-peer0) / float64(time.Millisecond) / secs
		ours := float64(ours1-ours0) / float64(time.Millisecond) / secs
		delivered := 0
		for _, e := range col.Events() {
			if e.Kind == "audit" {
				delivered++
			}
		}
		b.ReportMetric(peer, "audit-only-cpu-ms/tick")
		b.ReportMetric(ours, "reporting-cpu-ms/tick")
		b.ReportMetric(ours/peer, "reporting/audit-only")
		b.ReportMetric(float64(ourEvents)/secs, "actions/s")
		b.Logf("side by side for %.0f s: audit only %.1f ms CPU per tick (%d actions); with spool, webhook, metrics and summaries %.1f ms (%d actions, %d delivered in all): ratio %.3f",
			secs, peer, peerEvents, ours, ourEvents, delivered, ours/peer)
		if delivered == 0 {
			b.Error("nothing was delivered")
		}
	}
}
