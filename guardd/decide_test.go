package main

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// stormPolicyText is the fork-storm rule the deciding tests run on.
const stormPolicyText = `
class "c" { uids = ["1000-1999"] }
rule "storm" {
  class    = "c"
  when     = user.procs > 10
  cooldown = "1h"
  kill_user {}
}`

// newDecideDaemon is a daemon that decides on stormPolicyText without
// its loop: no enforcer and no sampler (a test's step handler stands in
// for the capabilities). It returns the daemon and its audit log's path.
func newDecideDaemon(t *testing.T) (*daemonState, string) {
	t.Helper()
	pol, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(stormPolicyText)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	pol.StateDir = t.TempDir()
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	audit, err := report.OpenAuditLog(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { audit.Close() })
	d := &daemonState{log: slog.New(slog.NewTextHandler(io.Discard, nil)), pol: pol, ledger: enforce.NewLedger(),
		accounts: platform.NewAccounts(), ticks: 1}
	d.audit.Store(audit)
	d.eval = policy.NewEvaluator(pol, func(int32) bool { return false })
	d.timings = timingsOf(pol)
	return d, auditPath
}
