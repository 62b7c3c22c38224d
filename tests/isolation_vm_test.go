//go:build linux

package tests

import (
	"strings"
	"testing"
	"time"
)

// isolationVMTests are the isolation e2e tests run in the VM: limits
// (CPU throttled, OOM kill in the group, a refused fork), placement (at
// start and at a uid change), kill_user and stop_user through the group.
// TestIsolationCountsShortLivedCPU is left out (not tried in the VM):
// both VMs already take about 80 s each here.
var isolationVMTests = "^TestIsolation(LimitsHold|PlacesAtUIDChange|KillUserUsesGroup|StopUserFreezes)$"

// vmArgs: a hung test in the VM dumps its goroutines before the VM's timeout.
var vmArgs = []string{"-test.timeout", "3m"}

// TestIsolationInVM runs the isolation e2e tests on pure cgroup v2 with
// real controllers: once with the cgroup filesystem driver (no systemd:
// the groups below guardd's own group, guardd-users/u<UID>/work) and once
// with systemd as PID 1, where guardd must take systemd's scopes
// (guardd.slice/guardd-u<UID>.scope/work). guardd runs as a child of the
// test in both, not as a unit.
func TestIsolationInVM(t *testing.T) {
	if inVM() {
		t.Skip("the VM runs the isolation tests themselves")
	}
	for _, mode := range []struct {
		name    string
		systemd bool
		driver  string
	}{{"cgroup2", false, "cgroup2"}, {"systemd", true, "systemd"}} {
		t.Run(mode.name, func(t *testing.T) {
			start := time.Now()
			r := rerunInVM(t, isolationVMTests, VMOptions{Systemd: mode.systemd, Timeout: 4 * time.Minute, Args: vmArgs})
			for _, want := range []string{"--- PASS: TestIsolationLimitsHold", "--- PASS: TestIsolationPlacesAtUIDChange",
				"--- PASS: TestIsolationKillUserUsesGroup", "--- PASS: TestIsolationStopUserFreezes"} {
				if !strings.Contains(r.Output, want) {
					t.Errorf("the VM's output has no %q (skipped or not run)", want)
				}
			}
			if strings.Contains(r.Output, "--- SKIP") {
				t.Errorf("a test skipped in the VM")
			}
			t.Logf("VM (%s driver): booted in %v, TCG slowdown %.1fx, %v in the VM, %v in all", mode.driver,
				r.Boot.Round(time.Millisecond), r.Slowdown, r.Wall.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		})
	}
}

// slowDeadline is d, or three times d in the VM: under TCG a memory hog
// throttled at memory.high takes tens of seconds to reach memory.max.
func slowDeadline(d time.Duration) time.Duration {
	if inVM() {
		return 3 * d
	}
	return d
}
