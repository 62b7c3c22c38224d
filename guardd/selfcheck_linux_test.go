package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/guardd/guardd/policy"
)

// TestSelfCheckHere: on this host (root, no sandbox) every probe works;
// dropping the helper's capabilities is tested end to end (tests/).
func TestSelfCheckHere(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	pol, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(fmt.Sprintf("guardd {\n  state_dir = %q\n  audit_log = %q\n}\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "log", "audit.jsonl")))})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	start := time.Now()
	for _, pr := range runProbes(pol, true) {
		if pr.Name != "realtime" { // a container may deny SCHED_FIFO
			t.Errorf("probe failed on this host: %s", pr)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the probes took %s: they must be quick", took)
	}
	// The control: a place that cannot take a state dir is reported.
	if err := probeWritable("/etc/hostname/guardd/ledger.json"); err == nil {
		t.Error("probeWritable: a path under a regular file is writable?")
	}
}
