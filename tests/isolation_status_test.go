//go:build linux

package tests

import (
	"fmt"
	"strings"
	"testing"

	"github.com/guardd/guardd/report"
)

// A customer throttled by its cpu limit is listed among the users held
// back on status.json, the status page and /metrics; a burner of a user
// outside the class (no group, never throttled) is not. The control
// daemon, whose policy isolates nobody, says it does not isolate (null)
// rather than an empty list.
func TestIsolationStatusListsHeldBack(t *testing.T) {
	u := NewUser(t)
	other := NewUser(t)
	groups := NewTestGroups(t)
	requireGroups(t, groups)
	StartBurner(t, u)
	StartBurner(t, other)
	addr := FreeAddr(t)
	g := StartGuarddConfig(t, Config{Body: isolationPolicy(20, "256MiB", 100, u) + metricsReport(addr), Wrap: groups.Wrap()})
	g.WaitLog(t, Msg("per-customer isolation"), Deadline)

	s := waitStatus(t, addr, func(s *report.HostSummary) bool {
		r := userIn(s.TopLimited, u.Name)
		return r != nil && r.CPUThrottledPercent > 0
	})
	r := userIn(s.TopLimited, u.Name)
	t.Logf("held back: %s throttled %.1f %% of periods, %.1f %% CPU, group memory %d bytes", u.Name, r.CPUThrottledPercent, r.CPUPercent, r.MemoryBytes)
	if r.UID != u.UID || r.MemoryBytes == 0 {
		t.Errorf("row %+v: want uid %d and the group's memory", r, u.UID)
	}
	if userIn(s.TopLimited, other.Name) != nil {
		t.Errorf("control: %s, outside the class, is listed as held back: %+v", other.Name, s.TopLimited)
	}
	page := string(httpGet(t, "http://"+addr+"/"))
	if i := strings.Index(page, `<table id="users-limited">`); i < 0 || !strings.Contains(page[i:], fmt.Sprintf(`data-user=%q`, u.Name)) {
		t.Errorf("status page: %s not in the table of users held back:\n%s", u.Name, page)
	}
	if !Eventually(Deadline, func() bool {
		return labelValues(scrapeMetrics(t, addr)["guardd_user_cpu_throttled_percent"], "user")[u.Name]
	}) {
		t.Errorf("no guardd_user_cpu_throttled_percent{user=%q}", u.Name)
	}
	if labelValues(scrapeMetrics(t, addr)["guardd_user_cpu_throttled_percent"], "user")[other.Name] {
		t.Errorf("control: guardd_user_cpu_throttled_percent for %s, outside the class", other.Name)
	}

	// The control daemon: the same users, a policy without limits.
	addr2 := FreeAddr(t)
	StartGuardd(t, Class(u, other)+metricsReport(addr2))
	s2 := waitStatus(t, addr2, func(s *report.HostSummary) bool { return userIn(s.TopCPU, other.Name) != nil })
	if s2.TopLimited != nil {
		t.Errorf("control daemon (no isolation): top_limited = %+v, want null", s2.TopLimited)
	}
	if page := string(httpGet(t, "http://"+addr2+"/")); !strings.Contains(page, `<p class="none" id="users-limited">Not isolated on this host.</p>`) {
		t.Errorf("control daemon: the page does not say it does not isolate:\n%s", page)
	}
}
