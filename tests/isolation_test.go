//go:build linux

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// isolationPolicy limits the class of the given users to cpu percent of
// a core, memory and procs, and reports every fault rule-wise.
func isolationPolicy(cpu int, memory string, procs int, users ...*User) string {
	return Class(users...) + fmt.Sprintf(`limits "c" {
  class  = "c"
  cpu    = %d
  memory = %q
  procs  = %d
}

rule "memory-faults" {
  class    = "c"
  when     = user.memory_faults > 0
  cooldown = "1h"
  report {}
}

rule "procs-faults" {
  class    = "c"
  when     = user.procs_faults > 0
  cooldown = "1h"
  report {}
}

rule "throttled" {
  class    = "c"
  when     = user.cpu_throttled_percent > 0
  cooldown = "1h"
  report {}
}
`, cpu, memory, procs)
}

// requireGroups skips unless guardd's groups can have the controllers
// here: the v1 cpu, memory and pids hierarchies, or on pure cgroup v2
// those controllers offered to the groups' base.
func requireGroups(t *testing.T, g *TestGroups) {
	t.Helper()
	if g.V2 {
		have := strings.Fields(g.Read(t, "unified", "", "cgroup.controllers"))
		for _, c := range []string{"cpu", "memory", "pids"} {
			if !slices.Contains(have, c) {
				t.Skipf("cgroup v2 without the %s controller for the test's groups (%q)", c, have)
			}
		}
		return
	}
	for _, h := range []string{"cpu", "memory", "pids"} {
		if g.Dirs[h] == "" {
			t.Skipf("no cgroup v1 %s hierarchy here (the VM tests cover cgroup v2)", h)
		}
	}
}

// A customer's processes land in the customer's own group, whatever
// started them and whenever, and the group's limits hold: CPU throttled
// (never killed), memory OOM-killed inside the group only, forks refused
// at procs; the faults reach the policy as user.* variables.
func TestIsolationLimitsHold(t *testing.T) {
	u := NewUser(t)
	other := NewUser(t) // not in the class: the control
	groups := NewTestGroups(t)
	requireGroups(t, groups)

	early := StartBurner(t, u) // before guardd: placed at start-up
	g := StartGuarddConfig(t, Config{Body: isolationPolicy(20, "64MiB", 40, u), Wrap: groups.Wrap()})
	g.WaitLog(t, Msg("per-customer isolation"), Deadline)

	inLeaf := func(pid int) func() bool {
		return func() bool {
			for _, h := range []string{"cpu", "memory", "pids"} {
				if rel, ok := groups.Group(pid, h); !ok || rel != groups.Leaf(u, "work") {
					return false
				}
			}
			return true
		}
	}
	if !Eventually(Deadline, inLeaf(early.PID)) {
		rel, _ := groups.Group(early.PID, "cpu")
		t.Fatalf("the burner started before guardd is not in %s (cpu: %q)", groups.Leaf(u, "work"), rel)
	}
	ctl := StartBurner(t, other)
	if rel, ok := groups.Group(ctl.PID, "cpu"); ok {
		t.Errorf("control: a user outside the class is in %q", rel)
	}

	// CPU: throttled at 20 % of a core. The kernel counts throttled
	// periods; usage over 3 s stays near the quota (generous bound).
	userGroup := groups.UserGroup(u)
	if !Eventually(Deadline, func() bool { return groups.Value(t, "cpu", userGroup, "cpu.stat", "nr_throttled") > 0 }) {
		t.Fatalf("cpu.stat of %s never shows throttling:\n%s", userGroup, groups.Read(t, "cpu", userGroup, "cpu.stat"))
	}
	usage := func() int64 { return groups.CPUUsage(t, userGroup).Nanoseconds() }
	u0, t0 := usage(), time.Now()
	time.Sleep(3 * time.Second) // a measuring window, not synchronisation
	share := float64(usage()-u0) / float64(time.Since(t0).Nanoseconds()) * 100
	t.Logf("the throttled burner used %.1f %% of a core (limit 20 %%)", share)
	if share > 35 {
		t.Errorf("the customer used %.1f %% of a core under a 20 %% limit", share)
	}
	if early.Exited() {
		t.Fatal("the throttled burner died: cpu limits must never kill")
	}
	g.WaitAudit(t, func(e Event) bool { return e.Rule == "throttled" && e.User == u.Name }, Deadline)

	// Memory: a hog allocating 256 MiB under 64 MiB is OOM-killed inside
	// the group; the burner of the same customer may stay, guardd stays.
	hog := StartOffender(t, u, "alloc", "256")
	st := hog.WaitExit(t, slowDeadline(Deadline))
	if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the memory hog ended with %v, want the OOM killer's SIGKILL; output %q", st, hog.Output())
	}
	for _, l := range hog.Output() {
		if strings.HasPrefix(l, "allocated-all") {
			t.Fatalf("the hog allocated everything under a 64 MiB limit: %q", hog.Output())
		}
	}
	// cgroup v1 counts the OOM kill in the leaf the process was in; v2 in
	// the group that has the limit (the leaves have no memory controller
	// of their own) and its ancestors.
	oomAt := groups.Leaf(u, "work")
	if groups.V2 {
		oomAt = userGroup
	}
	if oom := groups.OOMKills(t, oomAt); oom < 1 {
		t.Errorf("OOM kills in %s = %d, want >= 1", oomAt, oom)
	}
	if g.Exited() {
		t.Fatal("guardd died with the customer's memory hog")
	}
	ev := g.WaitAudit(t, func(e Event) bool { return e.Rule == "memory-faults" && e.User == u.Name }, Deadline)
	if v, _ := ev.Values["user.memory_faults"].(float64); v <= 0 {
		t.Errorf("memory-faults fired with user.memory_faults = %v", ev.Values["user.memory_faults"])
	}

	// Procs: once the forker is in its group, the group's pids limit
	// refuses the 41st task (the burner and its threads count too). The
	// safety net (RLIMIT_NPROC 200) is far above: the refusal is the
	// group's.
	go4 := filepath.Join(ExecDir(t), "go") // a directory the customer can read
	forker := StartOffenderSpec(t, u, OffenderSpec{Args: []string{"-nproc", "200", "fork-until", go4}, Reaped: true})
	if !Eventually(Deadline, inLeaf(forker.PID)) {
		t.Fatal("the forker was never placed in its group")
	}
	if err := os.WriteFile(go4, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	line := waitPrefix(t, forker, "forked ", Deadline)
	if f := strings.Fields(line); len(f) != 3 || f[2] != "EAGAIN" {
		t.Fatalf("fork-until said %q, want a refusal (EAGAIN)", line)
	} else if n, _ := strconv.Atoi(f[1]); n >= 40 {
		t.Fatalf("the forker made %d processes under a procs limit of 40", n)
	}
	refused := groups.Value(t, "pids", userGroup, "pids.events", "max")
	if !groups.V2 { // v1 counts in the leaf too; a v2 leaf has no pids files
		refused += groups.Value(t, "pids", groups.Leaf(u, "work"), "pids.events", "max")
	}
	if n := refused; n < 1 {
		t.Errorf("pids.events max = %d: the refusal did not come from the group's pids limit", n)
	}
	g.WaitAudit(t, func(e Event) bool { return e.Rule == "procs-faults" && e.User == u.Name }, Deadline)

	// The control burned unthrottled all along and got no group.
	if rel, ok := groups.Group(ctl.PID, "cpu"); ok {
		t.Errorf("control: a user outside the class ended up in %q", rel)
	}
}

// A process that becomes the customer's after guardd started (a root
// parent setuid()s to the customer: what php-fpm, cron, su and sshd do)
// is placed at its uid change, well before the reconcile of a slow tick
// could: the tick here is a minute.
func TestIsolationPlacesAtUIDChange(t *testing.T) {
	u := NewUser(t)
	groups := NewTestGroups(t)
	requireGroups(t, groups)
	dir := t.TempDir()
	addr := FreeAddr(t)
	early := StartOffender(t, u, "sleep") // before guardd: placed at start
	body := isolationPolicy(50, "256MiB", 100, u) + fmt.Sprintf("report {\n  metrics {\n    listen = %q\n  }\n}\n", addr)
	g := StartGuarddConfig(t, Config{Dir: dir, Interval: "1m", Body: body, Wrap: groups.Wrap()})
	g.WaitLog(t, Msg("per-customer isolation"), Deadline)
	if !strings.Contains(g.Log(), "proc connector") && strings.Contains(g.Log(), "no process events") {
		t.Skip("no proc connector here: placement waits for the tick")
	}
	// The offender is started by this root test process with setuid in
	// the child before exec: a uid-change event.
	o := StartOffender(t, u, "sleep")
	if !Eventually(30*time.Second, func() bool { rel, ok := groups.Group(o.PID, "pids"); return ok && rel == groups.Leaf(u, "work") }) {
		rel, _ := groups.Group(o.PID, "pids")
		t.Fatalf("a process that became the customer's is in %q 30 s later, want %s (the tick is 1m: the event path did not place it)", rel, groups.Leaf(u, "work"))
	}
	if !Eventually(Deadline, func() bool { rel, ok := groups.Group(early.PID, "pids"); return ok && rel == groups.Leaf(u, "work") }) {
		rel, _ := groups.Group(early.PID, "pids")
		t.Errorf("the process started before guardd is in %q, want %s (placed by the tick woken at start)", rel, groups.Leaf(u, "work"))
	}
	// The metrics say so: placed at the event and at start, none outside.
	fams := scrapeMetrics(t, addr)
	byLabel := func(name, label, value string) float64 {
		f := fams[name]
		if f == nil {
			return -1
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	if v := byLabel("guardd_cgroup_placed_total", "when", "event"); v < 1 {
		t.Errorf("guardd_cgroup_placed_total{when=event} = %v, want >= 1", v)
	}
	if v := byLabel("guardd_cgroup_placed_total", "when", "start"); v < 1 {
		t.Errorf("guardd_cgroup_placed_total{when=start} = %v, want >= 1", v)
	}
	if v := byLabel("guardd_cgroup_isolation_up", "driver", groups.Driver()); v != 1 {
		t.Errorf("guardd_cgroup_isolation_up{driver=%s} = %v, want 1", groups.Driver(), v)
	}
	if v := byLabel("guardd_limits_customers", "limits", "c"); v != 1 {
		t.Errorf("guardd_limits_customers{limits=c} = %v, want 1", v)
	}
	if f := fams["guardd_cgroup_outside_processes"]; f == nil || gaugeValue(f) != 0 {
		t.Errorf("guardd_cgroup_outside_processes = %v, want 0", f)
	}
}

// waitPrefix waits for an output line of o starting with prefix.
func waitPrefix(t testing.TB, o *Offender, prefix string, deadline time.Duration) string {
	t.Helper()
	var line string
	if !Eventually(deadline, func() bool {
		for _, l := range o.Output() {
			if strings.HasPrefix(l, prefix) {
				line = l
				return true
			}
		}
		return false
	}) {
		t.Fatalf("offender %d never printed %q; output %q, stderr %q", o.PID, prefix, o.Output(), o.Stderr())
	}
	return line
}

// kill_user of an isolated customer ends the fork bomb through the group
// (every process of the work leaf at once) while the protected session,
// in the kept leaf, lives on, running; the procs limit is the group's
// pids limit, not RLIMIT_NPROC (TestIsolationLimitsHold proves the
// refusal). stop_user freezes the group where the
// customer's own SIGCONT cannot undo it, and resume_after thaws it.
func TestIsolationKillUserUsesGroup(t *testing.T) {
	u := NewUser(t)
	groups := NewTestGroups(t)
	requireGroups(t, groups)
	dir := ExecDir(t)
	trigger := filepath.Join(dir, "go")
	session := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"sleep", "session"}})
	bomb := bashBomb(t, u, trigger)
	limits := "limits \"c\" {\n  class = \"c\"\n  procs = 150\n  cpu   = 150\n}\n\n"
	g := StartGuarddConfig(t, Config{Body: Class(u) + protectOffender() + limits + stormRule(100, 60), Wrap: groups.Wrap()})
	kept := groups.Leaf(u, "kept")
	if !Eventually(Deadline, func() bool { rel, ok := groups.Group(session.PID, "pids"); return ok && rel == kept }) {
		rel, _ := groups.Group(session.PID, "pids")
		t.Fatalf("the protected session is in %q, want %s", rel, kept)
	}
	if !Eventually(Deadline, func() bool { rel, ok := groups.Group(bomb.PID, "pids"); return ok && rel == groups.Leaf(u, "work") }) {
		t.Fatal("the bomb's shell was never placed in work")
	}
	// The group holds the procs limit: no RLIMIT_NPROC cap is set.
	if soft, _ := procLimit(t, bomb.PID); soft == "150" {
		t.Errorf("the bomb's shell carries RLIMIT_NPROC 150: the group's pids limit should hold it alone")
	}
	writeFile(t, trigger, "")
	ev := g.WaitAudit(t, func(e Event) bool {
		return Action("fork-storm", "kill_user", "done", 0)(e) && e.UID == u.UID
	}, Deadline)
	waitOnly(t, u, session)
	checkRunning(t, session, "the protected session in kept")
	if !strings.Contains(ev.Reason, fmt.Sprintf("killed u%d/work", u.UID)) {
		t.Errorf("kill_user reason %q, want the group's kill", ev.Reason)
	}
	t.Logf("kill_user: %q", ev.Reason)
}

// stop_user freezes an isolated customer's work leaf: a burner gets no
// CPU, whatever signals the customer sends itself, while the kept session
// runs; resume_after thaws it.
func TestIsolationStopUserFreezes(t *testing.T) {
	u := NewUser(t)
	groups := NewTestGroups(t)
	requireGroups(t, groups)
	if !groups.V2 && groups.Dirs["freezer"] == "" {
		t.Skip("no freezer hierarchy")
	}
	session := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"sleep", "session"}})
	burner := StartBurner(t, u)
	body := Class(u) + protectOffender() + "limits \"c\" {\n  class = \"c\"\n  cpu   = 150\n}\n\n" + `rule "freeze" {
  class    = "c"
  when     = user.cpu_percent > 20
  cooldown = "1h"
  stop_user {
    resume_after = "4s"
  }
}
`
	g := StartGuarddConfig(t, Config{Body: body, Wrap: groups.Wrap()})
	ev := g.WaitAudit(t, func(e Event) bool { return Action("freeze", "stop_user", "done", 0)(e) && e.UID == u.UID }, Deadline)
	if !strings.Contains(ev.Reason, fmt.Sprintf("freeze u%d/work", u.UID)) {
		t.Errorf("stop_user reason %q, want the group's freeze", ev.Reason)
	}
	frozen := func() bool { f, _ := groups.Frozen(t, groups.Leaf(u, "work")); return f }
	if f, state := groups.Frozen(t, groups.Leaf(u, "work")); !f {
		t.Fatalf("work leaf not frozen after stop_user: %q", state)
	}
	// The customer's own SIGCONT does not undo a freeze: the burner
	// gets no CPU over a measuring window after it.
	if err := syscall.Kill(burner.PID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	cpu := func() int64 { return groups.CPUUsage(t, groups.Leaf(u, "work")).Nanoseconds() }
	c0 := cpu()
	time.Sleep(time.Second) // a measuring window, not synchronisation
	if c1 := cpu(); c1 > c0+int64(20*time.Millisecond) && frozen() {
		t.Errorf("the frozen work leaf used %v of CPU in a second after the customer's SIGCONT", time.Duration(c1-c0))
	}
	if st, err := ReadStat(session.PID); err != nil || st.State == 'T' || st.State == 't' {
		t.Errorf("the protected session in kept is stopped (%c, %v)", st.State, err)
	}
	if rel, _ := groups.Group(session.PID, "freezer"); rel != groups.Leaf(u, "kept") {
		t.Errorf("the session is in %q, want kept", rel)
	}
	g.WaitAudit(t, func(e Event) bool { return e.Rule == "freeze" && e.Action == "resume_user" && e.UID == u.UID }, Deadline)
	if !Eventually(Deadline, func() bool { return !frozen() }) {
		t.Fatal("resume_after did not thaw the work leaf")
	}
}

// A customer who burns CPU in processes that each live a few tens of
// milliseconds (shorter than a tick: no sample sees most of them) shows
// little CPU to a per-process view; the customer's group counts every
// one of them, exited or not. Control: the same load of a customer
// without a group of its own reads low.
func TestIsolationCountsShortLivedCPU(t *testing.T) {
	u, ctl := NewUser(t), NewUser(t)
	groups := NewTestGroups(t)
	requireGroups(t, groups)
	hopper := "while :; do /bin/sh -c 'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done'; done"
	body := fmt.Sprintf(`class "c" {
  users = [%q]
}
class "ctl" {
  users = [%q]
}
limits "c" {
  class = "c"
  cpu   = 400
}
rule "cpu-c" {
  class    = "c"
  when     = user.procs > 0 || user.cpu_percent > 0
  cooldown = "1s"
  report {}
}
rule "cpu-ctl" {
  class    = "ctl"
  when     = user.procs > 0 || user.cpu_percent > 0
  cooldown = "1s"
  report {}
}
`, u.Name, ctl.Name)
	g := StartGuarddConfig(t, Config{Body: body, Interval: "500ms", Wrap: groups.Wrap()})
	StartOffenderSpec(t, u, OffenderSpec{Args: []string{"exec", "--", "/bin/sh", "-c", hopper}, Nice: BurnerNice})
	StartOffenderSpec(t, ctl, OffenderSpec{Args: []string{"exec", "--", "/bin/sh", "-c", hopper}, Nice: BurnerNice})
	cpuOf := func(rule string, uid uint32) func() float64 {
		return func() float64 {
			best := -1.0
			for _, e := range g.Audit(t) {
				if e.Rule == rule && e.UID == uid {
					if v, ok := e.Values["user.cpu_percent"].(float64); ok && v > best {
						best = v
					}
				}
			}
			return best
		}
	}
	var got float64
	if !Eventually(Deadline, func() bool { got = cpuOf("cpu-c", u.UID)(); return got > 50 }) {
		t.Fatalf("the grouped customer's short-lived burners read at most %.0f %% of a core, want > 50 %% (the group counts them all)", got)
	}
	ctlGot := cpuOf("cpu-ctl", ctl.UID)()
	t.Logf("short-lived CPU: with a group %.0f %%, without %.0f %% (per-process view)", got, ctlGot)
	if ctlGot >= got {
		t.Errorf("control: the ungrouped customer read %.0f %%, not less than the grouped one's %.0f %%: the test does not show what the group adds", ctlGot, got)
	}
}
