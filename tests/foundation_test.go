//go:build linux

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// HogPercent is the CPU threshold of the tests' hog rules. It is low on
// purpose: with tests in parallel on two loaded cores a nice-0 burner was
// measured at 4-15 % of a core (BurnerNice helps), and a rate over a
// 200ms tick comes in steps of 5 % (USER_HZ is 100).
const HogPercent = 5

// hogRule returns a rule "hog" on class "c" that renices burners and
// then kills them. "|| proc.nice == 19" keeps a reniced burner matching:
// niced to 19 next to another test's burner it gets almost no CPU, and
// the kill must not depend on the scheduler giving it some.
func hogRule(steps string) string {
	return fmt.Sprintf(`rule "hog" {
  class = "c"
  when  = proc.cpu_percent > %d || proc.nice == 19
  %s
}
`, HogPercent, steps)
}

// reniceRule returns a rule that renices burners and nothing else.
func reniceRule(name, mode string) string {
	m := ""
	if mode != "" {
		m = fmt.Sprintf("mode  = %q\n  ", mode)
	}
	return fmt.Sprintf(`rule %q {
  class = "c"
  %swhen  = proc.cpu_percent > %d
  renice {
    nice = 19
  }
}
`, name, m, HogPercent)
}

func TestCPUHogIsRenicedThenKilled(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	hog := StartBurner(t, u)
	g := StartGuardd(t, Class(u)+hogRule(`for = "1s"
  renice {
    nice = 19
  }
  kill {
    after  = "2s"
    signal = "TERM"
    grace  = "2s"
  }`))

	ren := g.WaitAudit(t, Action("hog", "renice", "done", hog.PID), Deadline)
	if n := Nice(t, hog.PID); n != 19 {
		t.Errorf("nice after renice = %d, want 19", n)
	}
	checkProcEvent(t, ren, hog, u)
	if ren.RuleAt != g.RuleAt(t, "hog") || ren.Step != 1 || ren.Mode != "enforce" {
		t.Errorf("renice event: rule_at %q step %d mode %q, want %q 1 enforce", ren.RuleAt, ren.Step, ren.Mode, g.RuleAt(t, "hog"))
	}
	if ren.Nice == nil || *ren.Nice != 19 {
		t.Errorf("renice event: nice %v, want 19", ren.Nice)
	}
	if cpu, ok := ren.Values["proc.cpu_percent"].(float64); !ok || cpu <= HogPercent {
		t.Errorf("renice event: values[proc.cpu_percent] = %v, want > %d", ren.Values["proc.cpu_percent"], HogPercent)
	}

	kill := g.WaitAudit(t, Action("hog", "kill", "done", hog.PID), Deadline)
	checkProcEvent(t, kill, hog, u)
	if kill.Signal != "TERM" || kill.Step != 2 {
		t.Errorf("kill event: signal %q step %d, want TERM 2", kill.Signal, kill.Step)
	}
	if d := kill.Time.Sub(ren.Time); d < 2*time.Second {
		t.Errorf("kill came %s after the renice, want at least after = 2s", d)
	}
	WaitGone(t, hog.ID, Deadline)
	st := hog.WaitExit(t, Deadline)
	if ws := st.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("hog ended with %v, want killed by SIGTERM", st)
	}
}

// checkProcEvent checks the process facts of an audit line about o.
func checkProcEvent(t *testing.T, ev Event, o *Offender, u *User) {
	t.Helper()
	if ev.PID != o.ID.PID || ev.StartTime != o.ID.StartTime || ev.UID != u.UID || ev.User != u.Name {
		t.Errorf("event names %d@%d uid %d user %q, want %v uid %d user %q", ev.PID, ev.StartTime, ev.UID, ev.User, o.ID, u.UID, u.Name)
	}
	if ev.Exe != o.Exe {
		t.Errorf("event exe %q, want %q", ev.Exe, o.Exe)
	}
	if want := filepath.Base(o.Cmd.Path); ev.Comm != want && !strings.HasPrefix(want, ev.Comm) {
		t.Errorf("event comm %q, want %q", ev.Comm, want)
	}
	if want := strings.Join(o.Argv, " "); ev.Cmdline != want {
		t.Errorf("event cmdline %q, want %q", ev.Cmdline, want)
	}
	if ev.Host == "" || ev.Time.IsZero() {
		t.Errorf("event without host or time: %+v", ev)
	}
}

func TestLongRunnerIsKilled(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	sleeper := StartOffender(t, u, "sleep")
	g := StartGuardd(t, Class(u)+`rule "long-runner" {
  class = "c"
  when  = proc.age_seconds > 3 && proc.state != "Z"
  kill {}
}
`)
	ev := g.WaitAudit(t, Action("long-runner", "kill", "done", sleeper.PID), Deadline)
	checkProcEvent(t, ev, sleeper, u)
	if ev.Signal != "TERM" {
		t.Errorf("kill signal %q, want the default TERM", ev.Signal)
	}
	if age, ok := ev.Values["proc.age_seconds"].(float64); !ok || age <= 3 {
		t.Errorf("values[proc.age_seconds] = %v, want > 3", ev.Values["proc.age_seconds"])
	}
	WaitGone(t, sleeper.ID, Deadline)
}

// A protected executable, started as a service starts its workers: by a
// root parent that runs a protected executable and setuid()s (here the
// root reaper, offenderBin). Control: a burner the test binary (root, not
// protected) started, running offenderBin, protected too: running a
// protected binary is not enough (policy/protect.go).
func TestProtectedExeIsNeverTouched(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	exe := filepath.Join(ExecDir(t), "protected-burner")
	CopyFile(t, offenderBin, exe, 0o755)
	prot := StartOffenderSpec(t, u, OffenderSpec{Exe: exe, Args: []string{"burn"}, Nice: BurnerNice, Reaped: true})
	control := StartBurner(t, u)
	if got, _ := Exe(prot.PID); got != exe {
		t.Fatalf("protected burner runs %q, want %q", got, exe)
	}
	g := StartGuardd(t, Class(u)+fmt.Sprintf("protect {\n  exes = [%q, %q]\n}\n\n", exe, offenderBin)+reniceRule("hog", ""))

	// Both burned since before guardd started: the tick that acts on the
	// control has seen the protected one too.
	g.WaitAudit(t, Action("hog", "renice", "done", control.PID), Deadline)
	if !Alive(prot.ID) {
		t.Fatal("the protected burner died")
	}
	if n := Nice(t, prot.PID); n != prot.InitialNice {
		t.Errorf("protected burner nice = %d, want %d (untouched)", n, prot.InitialNice)
	}
	for _, ev := range g.Audit(t) {
		if int(ev.PID) == prot.PID {
			t.Errorf("an audit line names the protected process: %+v", ev)
		}
	}
}

func TestBurnerNamedSshdIsActedOn(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	fake := StartOffenderSpec(t, u, OffenderSpec{Argv0: "sshd", Args: []string{"-name", "sshd", "burn"}, Nice: BurnerNice})
	st, err := ReadStat(fake.PID)
	argv, _ := Cmdline(fake.PID)
	if err != nil || st.Comm != "sshd" || len(argv) == 0 || argv[0] != "sshd" {
		t.Fatalf("offender comm %q argv %q (%v), want sshd both", st.Comm, argv, err)
	}
	g := StartGuardd(t, Class(u)+"protect {\n  exes = [\"/usr/sbin/sshd\"]\n}\n\n"+reniceRule("hog", ""))
	ev := g.WaitAudit(t, Action("hog", "renice", "done", fake.PID), Deadline)
	if ev.Comm != "sshd" || !strings.HasPrefix(ev.Cmdline, "sshd ") || ev.Exe != offenderBin {
		t.Errorf("event comm %q cmdline %q exe %q, want sshd, sshd ..., %s", ev.Comm, ev.Cmdline, ev.Exe, offenderBin)
	}
	if n := Nice(t, fake.PID); n != 19 {
		t.Errorf("nice = %d, want 19", n)
	}
}

func TestMonitorMode(t *testing.T) {
	t.Parallel()
	// cpu_seconds, not cpu_percent: a burner's share of a loaded host
	// dips, and a dip would restart the escalation before the kill step.
	steps := `renice {
    nice = 19
  }
  kill {
    after  = "1s"
    signal = "KILL"
  }`
	for _, tc := range []struct {
		name  string
		rule  string
		flags []string
	}{
		{"flag", `rule "hog" {
  class = "c"
  when  = proc.cpu_seconds > 0.2
  ` + steps + "\n}\n", []string{"--mode", "monitor"}},
		{"rule", `rule "hog" {
  class = "c"
  mode  = "monitor"
  when  = proc.cpu_seconds > 0.2
  ` + steps + "\n}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := NewUser(t)
			hog := StartBurner(t, u)
			g := StartGuardd(t, Class(u)+tc.rule, tc.flags...)
			g.WaitAudit(t, Action("hog", "kill", "", hog.PID), Deadline)
			if !Alive(hog.ID) {
				t.Fatal("monitor mode killed the process")
			}
			if n := Nice(t, hog.PID); n != hog.InitialNice {
				t.Errorf("monitor mode reniced the process from %d to %d", hog.InitialNice, n)
			}
			actions := map[string]int{}
			for _, ev := range g.Audit(t) {
				if int(ev.PID) != hog.PID {
					continue
				}
				actions[ev.Action]++
				if ev.Outcome != "would-do" || ev.Mode != "monitor" || ev.Reason == "" {
					t.Errorf("monitor mode audit line: outcome %q mode %q reason %q, want would-do, monitor and what it would do",
						ev.Outcome, ev.Mode, ev.Reason)
				}
			}
			if actions["renice"] == 0 || actions["kill"] == 0 {
				t.Errorf("audit actions %v, want renice and kill", actions)
			}
		})
	}
}

func TestHotReloadLowersThreshold(t *testing.T) {
	t.Parallel()
	u, u2 := NewUser(t), NewUser(t)
	hog := StartBurner(t, u)
	rule := func(threshold int) string {
		return Class(u, u2) + fmt.Sprintf(`rule "hog" {
  class = "c"
  when  = proc.cpu_percent > %d
  renice {
    nice = 19
  }
}
`, threshold)
	}
	g := StartGuarddConfig(t, Config{Interval: "1s", Body: rule(1000)})
	// A couple of ticks under the old policy: nothing may happen.
	if Eventually(2500*time.Millisecond, func() bool { return len(g.Audit(t)) > 0 }) {
		t.Fatalf("action under a threshold of 1000 %%: %+v", g.Audit(t)[0])
	}

	g.SetPolicy(t, rule(HogPercent)) // temp file renamed over, as editors do
	rl := g.WaitLog(t, Msg("policy reloaded"), Deadline)
	ev := g.WaitAudit(t, Action("hog", "renice", "done", hog.PID), Deadline)
	if d := ev.Time.Sub(rl.Time); d > 2*time.Second {
		t.Errorf("the action came %s after the reload, want within two ticks (2s)", d)
	}
	for _, e := range g.Audit(t) {
		if e.Time.Before(rl.Time) {
			t.Errorf("action before the reload: %+v", e)
		}
	}

	// SIGHUP reloads too, and the daemon keeps acting afterwards.
	g.Reload(t)
	g.WaitLog(t, func(l LogLine) bool { return l.Msg == "policy reloaded" && l.Attrs["why"] == "SIGHUP" }, Deadline)
	hog2 := StartBurner(t, u2)
	g.WaitAudit(t, Action("hog", "renice", "done", hog2.PID), Deadline)
}

func TestBrokenReloadKeepsOldPolicy(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	g := StartGuardd(t, Class(u)+reniceRule("hog", ""))
	oldAt := g.RuleAt(t, "hog")

	// The rule moves down two lines: rule_at tells which policy acted.
	broken := Header(g.Dir, g.Interval) + Class(u) + "# unknown class below\n\n" + `rule "hog" {
  class = "nosuch"
  when  = proc.cpu_percent > 1
  renice {
    nice = 19
  }
}
`
	g.SetPolicyText(t, broken)
	failed := g.WaitLog(t, Msg("policy reload failed"), Deadline)
	if failed.Level != "ERROR" {
		t.Errorf("reload failure logged at %s, want ERROR", failed.Level)
	}
	pos := fmt.Sprintf("%s:%d,", g.PolicyPath, LineOf(t, broken, `"nosuch"`))
	found := false
	for _, l := range g.Lines() {
		if l.Level == "ERROR" && strings.Contains(l.Raw, pos) {
			found = true
		}
	}
	if !found {
		t.Errorf("no error log line with the diagnostic's position %q", pos)
	}

	hog := StartBurner(t, u) // started after the failed reload
	ev := g.WaitAudit(t, Action("hog", "renice", "done", hog.PID), Deadline)
	if ev.RuleAt != oldAt {
		t.Errorf("acted per rule at %s, want the old policy's %s", ev.RuleAt, oldAt)
	}
	if g.Exited() {
		t.Fatal("guardd exited after a failed reload")
	}
}

func TestStaleDecisionNeverHitsReusedPID(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	victim := StartOffender(t, u, "-trap-term", "sleep", "victim-marker")
	g := StartGuardd(t, Class(u)+`rule "victim" {
  class = "c"
  when  = strcontains(proc.cmdline, "victim-marker")
  kill {
    signal = "TERM"
    grace  = "3s"
  }
}
`)
	g.WaitAudit(t, Action("victim", "kill", "done", victim.PID), Deadline)
	// The victim exits at once on SIGTERM; reap it, then put an innocent
	// process of the same user on its pid while guardd's grace period runs.
	if st := victim.WaitExit(t, Deadline); !st.Success() {
		t.Fatalf("victim ended with %v, want exit 0 after printing term", st)
	}
	innocent := StartOffenderAtPID(t, u, victim.PID, "sleep", "innocent")
	if innocent == nil {
		t.Skipf("could not get pid %d again for the innocent process: the host forks too much", victim.PID)
	}
	innocentAt := time.Now()
	fu := g.WaitAudit(t, func(ev Event) bool {
		return ev.Rule == "victim" && ev.Action == "kill" && ev.Signal == "KILL"
	}, Deadline)
	if fu.Time.Before(innocentAt) {
		// Not a failure, but nothing proven: the grace period ended first.
		t.Skipf("the grace period ended (%s) before the innocent process was on pid %d (%s)", fu.Time, innocent.PID, innocentAt)
	}
	if fu.Outcome != "skipped" || fu.StartTime != victim.ID.StartTime {
		t.Errorf("follow-up after the grace period: outcome %q for %d@%d (%s), want skipped for the victim %v",
			fu.Outcome, fu.PID, fu.StartTime, fu.Reason, victim.ID)
	}
	if !Alive(innocent.ID) || innocent.Exited() {
		t.Fatalf("the innocent process on the reused pid %d died: %v", innocent.PID, innocent.Cmd.ProcessState)
	}
	for _, ev := range g.Audit(t) {
		if ev.PID == innocent.ID.PID && ev.StartTime == innocent.ID.StartTime {
			t.Errorf("an audit line names the innocent process: %+v", ev)
		}
	}
}

func TestStopAndCheck(t *testing.T) {
	t.Parallel()
	t.Run("sigterm", func(t *testing.T) {
		t.Parallel()
		u := NewUser(t)
		g := StartGuardd(t, Class(u)+reniceRule("hog", ""))
		g.Stop(t) // fails the test unless it exits 0
		g.WaitLog(t, Msg("stopping"), Deadline)
	})
	t.Run("check-valid", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		path := filepath.Join(dir, "policy.hcl")
		writeFile(t, path, Header(dir, "1s")+`class "c" {
  users = ["gdt-nobody"]
}
`+reniceRule("hog", ""))
		out, errOut, code := RunGuardd(t, "check", path)
		if code != 0 || !strings.Contains(out, "OK") {
			t.Errorf("guardd check on a valid policy: exit %d, stdout %q, stderr %q; want 0 and OK", code, out, errOut)
		}
	})
	t.Run("check-broken", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		path := filepath.Join(dir, "policy.hcl")
		text := `guardd {
  interval = "2x"
}
class "c" {
  users = ["gdt-nobody"]
}
rule "hog" {
  class = "nosuch"
  when  = proc.cpu_percent > 10
  renice {
    nice = 19
  }
}
`
		writeFile(t, path, text)
		_, errOut, code := RunGuardd(t, "check", path)
		if code != 1 {
			t.Errorf("guardd check on a broken policy: exit %d, want 1", code)
		}
		for _, bad := range []string{`"2x"`, `"nosuch"`} {
			line, col := lineCol(text, bad)
			if pos := fmt.Sprintf("%s:%d,%d", path, line, col); !strings.Contains(errOut, pos) {
				t.Errorf("guardd check does not report %s at %s:\n%s", bad, pos, errOut)
			}
		}
		if !strings.Contains(errOut, "2 error(s)") {
			t.Errorf("guardd check does not count 2 errors:\n%s", errOut)
		}
	})
}

// TestCheckRefusesBrokenMailTemplate: the real binary's `guardd check`
// fails on what would refuse a reload outside the policy file: an admin's
// mail template with a syntax error.
func TestCheckRefusesBrokenMailTemplate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "templates")
	if err := os.Mkdir(tmpl, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.hcl")
	writeFile(t, path, Header(dir, "1s")+`class "c" {
  users = ["gdt-nobody"]
}
rule "hog" {
  class = "c"
  when  = proc.cpu_percent > 10
  notify {}
}
report {
  mail {
    to        = "{{.User}}@example.jp"
    templates = "`+tmpl+`"
  }
}
`)
	writeFile(t, filepath.Join(tmpl, "hog.en.tmpl"), "Subject: {{.Rule} on {{.Host}}\n\nbody\n")
	_, errOut, code := RunGuardd(t, "check", path)
	if code != 1 || !strings.Contains(errOut, "hog.en.tmpl") {
		t.Errorf("guardd check with a broken template: exit %d, stderr %q; want 1 naming hog.en.tmpl", code, errOut)
	}
	writeFile(t, filepath.Join(tmpl, "hog.en.tmpl"), "Subject: {{.Rule}} on {{.Host}}\n\nbody\n")
	if out, errOut, code := RunGuardd(t, "check", path); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("guardd check with the template mended: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestStartupPagesReleased: once started, guardd pages out the parts of
// its binary that only start-up ran, and its resident file pages fall.
func TestStartupPagesReleased(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	// A copy of the binary of its own: MADV_PAGEOUT leaves pages that
	// other processes map too, and the tests run many daemons at once.
	bin := filepath.Join(t.TempDir(), "guardd")
	b, err := os.ReadFile(guarddBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	g := StartGuarddConfig(t, Config{Body: Class(u) + reniceRule("hog", ""), Flags: []string{"--log-level", "debug"}, Bin: bin})
	l := g.WaitLog(t, Msg("released start-up code pages"), Deadline)
	if mib, _ := l.Attrs["mib"].(float64); mib <= 0 {
		t.Errorf("released %v MiB, want more than 0: %s", l.Attrs["mib"], l.Raw)
	}
}

func lineCol(text, sub string) (int, int) {
	i := strings.Index(text, sub)
	nl := strings.LastIndexByte(text[:i], '\n')
	return strings.Count(text[:i], "\n") + 1, i - nl
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestEscalationSurvivesRestart(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	hog := StartBurner(t, u)
	cfg := Config{Dir: t.TempDir(), Body: Class(u) + hogRule(`for = "1s"
  renice {
    nice = 19
  }
  kill {
    after  = "6s"
    signal = "KILL"
  }`)}
	g1 := StartGuarddConfig(t, cfg)
	g1.WaitAudit(t, Action("hog", "renice", "done", hog.PID), Deadline)
	g1.Stop(t)
	if _, err := os.Stat(filepath.Join(g1.StateDir, "ledger.json")); err != nil {
		t.Errorf("no saved escalation state: %v", err)
	}

	g2 := StartGuarddConfig(t, cfg)
	started := g2.WaitLog(t, Msg("guardd started"), Deadline)
	kill := g2.WaitAudit(t, Action("hog", "kill", "done", hog.PID), Deadline)
	if kill.Time.Before(started.Time) {
		t.Errorf("the kill (%s) came before the second guardd started (%s)", kill.Time, started.Time)
	}
	WaitGone(t, hog.ID, Deadline)
	var renices int
	for _, ev := range g2.Audit(t) {
		if ev.Action == "renice" && int(ev.PID) == hog.PID {
			renices++
		}
	}
	if renices != 1 {
		t.Errorf("%d renice lines, want 1: the restarted guardd forgot that step 1 ran", renices)
	}
}

// TestEditedRuleStartsAfresh: escalations are keyed by the rule's
// content, so a rule edited across a restart (its kill step now later)
// starts over at step 1 instead of reinterpreting the saved step;
// TestEscalationSurvivesRestart, with the rule unchanged, is the control.
func TestEditedRuleStartsAfresh(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	hog := StartBurner(t, u)
	steps := func(after string) string {
		return `for = "1s"
  renice {
    nice = 19
  }
  kill {
    after  = "` + after + `"
    signal = "KILL"
  }`
	}
	cfg := Config{Dir: t.TempDir(), Body: Class(u) + hogRule(steps("6s"))}
	g1 := StartGuarddConfig(t, cfg)
	g1.WaitAudit(t, Action("hog", "renice", "done", hog.PID), Deadline)
	g1.Stop(t)

	cfg.Body = Class(u) + hogRule(steps("1h"))
	g2 := StartGuarddConfig(t, cfg)
	started := g2.WaitLog(t, Msg("guardd started"), Deadline)
	renice := Action("hog", "renice", "done", hog.PID)
	// The audit log is shared with the first daemon: its renice is older.
	g2.WaitAudit(t, func(ev Event) bool { return renice(ev) && !ev.Time.Before(started.Time) }, Deadline)
}

// TestRateEscalationSurvivesRestart is TestEscalationSurvivesRestart with
// a condition on a rate alone, as admins write them (proc.cpu_percent >
// 80): the restarted daemon must not start the escalation over.
func TestRateEscalationSurvivesRestart(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	hog := StartBurner(t, u)
	// A 1s tick: a burner gets CPU in every second even on a loaded host,
	// so the condition holds on every tick but the first of each daemon.
	cfg := Config{Dir: t.TempDir(), Interval: "1s", Body: Class(u) + `rule "hog" {
  class = "c"
  when  = proc.cpu_percent > 1
  report {}
  kill {
    after  = "4s"
    signal = "KILL"
  }
}
`}
	g1 := StartGuarddConfig(t, cfg)
	g1.WaitAudit(t, Action("hog", "report", "done", hog.PID), Deadline)
	g1.Stop(t)

	g2 := StartGuarddConfig(t, cfg)
	started := g2.WaitLog(t, Msg("guardd started"), Deadline)
	g2.WaitAudit(t, Action("hog", "kill", "", hog.PID), Deadline)
	var reports []Event
	for _, ev := range g2.Audit(t) {
		if ev.Action == "report" && int(ev.PID) == hog.PID {
			reports = append(reports, ev)
		}
	}
	if len(reports) != 1 {
		t.Errorf("%d report lines, want 1: the guardd restarted at %s forgot that step 1 ran", len(reports), started.Time.Format(time.RFC3339Nano))
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	hog := StartBurner(t, u)
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	writeFile(t, path, Header(dir, "1s")+Class(u)+`class "others" {
  users = ["gdt-nobody"]
}

`+reniceRule("hog", "")+`
rule "never" {
  class = "c"
  when  = proc.cpu_percent > 1000
  renice {
    nice = 19
  }
}

rule "elsewhere" {
  class = "others"
  when  = proc.cpu_percent > 0
  renice {
    nice = 19
  }
}
`)
	out, errOut, code := RunGuardd(t, "explain", "--policy", path, "--window", "2s", fmt.Sprint(hog.PID))
	if code != 0 {
		t.Fatalf("guardd explain: exit %d\n%s%s", code, out, errOut)
	}
	verdicts := map[string][]string{}
	classes := ""
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "classes":
			classes = strings.Join(f[1:], " ")
		case len(f) >= 4 && (f[0] == "hog" || f[0] == "never" || f[0] == "elsewhere"):
			verdicts[f[0]] = f
		}
	}
	if classes != "c" {
		t.Errorf("explain says classes %q, want c", classes)
	}
	// RULE AT APPLIES HOLDS ...
	want := map[string][2]string{"hog": {"yes", "yes"}, "never": {"yes", "no"}, "elsewhere": {"no", "yes"}}
	for rule, w := range want {
		f := verdicts[rule]
		if f == nil {
			t.Errorf("explain has no verdict line for rule %s", rule)
			continue
		}
		applies, holds := f[2], f[3]
		if applies == "no" { // "no (class others)"
			for i, s := range f {
				if strings.HasSuffix(s, ")") && i+1 < len(f) {
					holds = f[i+1]
					break
				}
			}
		}
		if applies != w[0] || holds != w[1] {
			t.Errorf("explain verdict for %s: applies %q holds %q, want %q %q", rule, applies, holds, w[0], w[1])
		}
		if at := fmt.Sprintf("%s:%d", path, LineOf(t, mustRead(t, path), fmt.Sprintf("rule %q", rule))); f[1] != at {
			t.Errorf("explain: rule %s at %q, want %q", rule, f[1], at)
		}
	}
	if t.Failed() {
		t.Logf("guardd explain output:\n%s", out)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
