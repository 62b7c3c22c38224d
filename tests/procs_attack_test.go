//go:build linux

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Attacks on the process observer and the enforcer: customers hiding
// from a guard that trusts /proc at face value. Each has its control.

// buildC compiles testdata/src with the system cc into dir (mode 0755,
// so that the test users can run it) and returns the output's path.
func buildC(t *testing.T, src, dir, out string, flags ...string) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	path := filepath.Join(dir, out)
	args := append([]string{"-O", "-o", path, filepath.Join("testdata", src)}, flags...)
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("cc %v: %v\n%s", args, err, b)
	}
	return path
}

// A process whose main thread called pthread_exit shows a zombie leader
// (state Z, no exe, no descriptors) while its other thread burns: it is
// reniced and killed like any burner, its descriptors, kept in a private
// table, are counted, and its exe is read. Control: a normal burner.
func TestPthreadExitBurnerIsActedOn(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	dir := ExecDir(t)
	exe := buildC(t, "pthread_exit.c", dir, "pthread_exit", "-lpthread")
	att := StartOffenderSpec(t, u, OffenderSpec{Exe: exe, Args: []string{"burn", "1500", "unshare"}, Nice: BurnerNice})
	sleeper := StartOffenderSpec(t, u, OffenderSpec{Exe: exe, Args: []string{"sleep"}})
	control := StartBurner(t, u)
	// The leader exits right after "ready": wait for it to show so.
	for _, o := range []*Offender{att, sleeper} {
		if !Eventually(Deadline, func() bool { st, err := ReadStat(o.PID); return err == nil && st.State == 'Z' && st.Threads > 1 }) {
			t.Fatalf("pthread_exit offender %d: leader not shown as exited", o.PID)
		}
	}
	g := StartGuardd(t, Class(u)+hogRule(`renice {
    nice = 19
  }
  kill {
    after  = "2s"
    signal = "TERM"
  }`)+fmt.Sprintf(`
rule "fds" {
  class = "c"
  when  = proc.fds > 1000
  report {}
}

rule "tmp-exe" {
  class = "c"
  when  = glob(proc.exe, [%q])
  report {}
}

rule "long-runner" {
  class = "c"
  when  = proc.age_seconds > 1 && proc.state != "Z"
  report {}
}
`, dir+"/**"))

	g.WaitAudit(t, Action("hog", "renice", "done", control.PID), Deadline)
	ren := g.WaitAudit(t, Action("hog", "renice", "done", att.PID), Deadline)
	if ren.Exe != exe {
		t.Errorf("renice event exe %q, want %q", ren.Exe, exe)
	}
	fds := g.WaitAudit(t, Action("fds", "report", "done", att.PID), Deadline)
	if n, ok := fds.Values["proc.fds"].(float64); !ok || n < 1500 {
		t.Errorf("fds event: proc.fds = %v, want >= 1500 (the thread's private table)", fds.Values["proc.fds"])
	}
	g.WaitAudit(t, Action("tmp-exe", "report", "done", att.PID), Deadline)
	// The default long-runner's "not a zombie" does not spare it: the
	// state is its live thread's.
	lr := g.WaitAudit(t, Action("long-runner", "report", "done", sleeper.PID), Deadline)
	if st, _ := lr.Values["proc.state"].(string); st == "Z" || st == "" {
		t.Errorf("long-runner event: proc.state %q, want the live thread's", st)
	}
	g.WaitAudit(t, Action("hog", "kill", "done", att.PID), Deadline)
	WaitGone(t, att.ID, Deadline)
	for _, ev := range g.Audit(t) {
		if int(ev.PID) == att.PID && ev.Outcome == "skipped" {
			t.Errorf("a step on the pthread_exit process was skipped: %+v", ev)
		}
	}
}

// bashWaiting returns a bash script that waits for the file gate, then
// does then (a command line), leaving a shell that stays a shell: a
// loop of sleeps (bash -c would exec a single command in its place).
func bashWaiting(gate, then string) string {
	return fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.1; done; %s`, gate, then)
}

// exec of a binary with the same name keeps comm, which was all the
// sampler looked at: `exec /tmp/kit/bash` from bash must still be seen as
// a new executable (the proc connector's exec event). Control: a bash that
// never execs is not temp-exe.
func TestExecUnderSameNameIsSeen(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	dir := ExecDir(t)
	kit := filepath.Join(dir, "kit")
	if err := os.Mkdir(kit, 0o755); err != nil {
		t.Fatal(err)
	}
	kitBash := filepath.Join(kit, "bash")
	CopyFile(t, "/bin/bash", kitBash, 0o755)
	gate := filepath.Join(dir, "go")
	loop := `while :; do sleep 1; done`
	att := StartOffender(t, u, "exec", "--", "/bin/bash", "-c", bashWaiting(gate, "exec "+kitBash+" -c '"+loop+"'"))
	control := StartOffender(t, u, "exec", "--", "/bin/bash", "-c", bashWaiting(gate, loop))
	g := StartGuardd(t, Class(u)+fmt.Sprintf(`rule "seen" {
  class = "c"
  when  = glob(proc.exe, ["/usr/bin/bash", "/bin/bash"]) && proc.age_seconds > 0
  report {}
}

rule "temp-exe" {
  class = "c"
  when  = glob(proc.exe, [%q])
  report {}
}
`, kit+"/**"))
	// guardd knows both as /usr/bin/bash before the exec.
	g.WaitAudit(t, Action("seen", "report", "done", att.PID), Deadline)
	g.WaitAudit(t, Action("seen", "report", "done", control.PID), Deadline)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !Eventually(Deadline, func() bool { exe, _ := Exe(att.PID); return exe == kitBash }) {
		t.Fatalf("the attacker never exec'd %s", kitBash)
	}
	if st, err := ReadStat(att.PID); err != nil || st.Comm != "bash" {
		t.Fatalf("after exec: comm %q (%v), want bash still", st.Comm, err)
	}
	ev := g.WaitAudit(t, Action("temp-exe", "report", "done", att.PID), Deadline)
	if ev.Exe != kitBash || ev.Comm != "bash" {
		t.Errorf("temp-exe event: exe %q comm %q, want %q bash", ev.Exe, ev.Comm, kitBash)
	}
	if !strings.Contains(ev.Cmdline, kitBash) {
		t.Errorf("temp-exe event: cmdline %q, want the new one (%s …)", ev.Cmdline, kitBash)
	}
	for _, ev := range g.Audit(t) {
		if ev.Rule == "temp-exe" && int(ev.PID) == control.PID {
			t.Errorf("the control bash was taken for temp-exe: %+v", ev)
		}
	}
}

// childWithExe waits for a child of ppid running exe and returns its pid.
func childWithExe(t *testing.T, ppid int, exe string) int {
	t.Helper()
	var pid int
	ok := Eventually(Deadline, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", ppid, ppid))
		if err != nil {
			return false
		}
		for _, f := range strings.Fields(string(b)) {
			var c int
			fmt.Sscan(f, &c)
			if e, _ := Exe(c); e == exe {
				pid = c
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no child of %d runs %s", ppid, exe)
	}
	return pid
}

// protect { exes } protects a process only when a protected root service
// started it and nothing of the customer's is loaded into it. Attacks: a
// protected binary with a customer's library preloaded (LD_PRELOAD into
// /usr/bin/sleep, started the way a protected service starts its
// workers), the protected binary started by the customer's own shell, and
// a protected process that execs customer code under the same name.
// Control: the protected binary started by a root parent that runs a
// protected executable and setuid()s to the customer (as sshd does).
func TestProtectedExeNeedsProvenance(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	dir := ExecDir(t)
	burnSO := buildC(t, "burn_preload.c", dir, "burn.so", "-shared", "-fPIC")
	prot := filepath.Join(dir, "protected-burner")
	CopyFile(t, offenderBin, prot, 0o755)
	protBash := filepath.Join(dir, "protected-bash")
	CopyFile(t, "/bin/bash", protBash, 0o755)
	kitBash := filepath.Join(dir, "kit", "bash")
	if err := os.Mkdir(filepath.Dir(kitBash), 0o755); err != nil {
		t.Fatal(err)
	}
	CopyFile(t, "/bin/bash", kitBash, 0o755)
	gate := filepath.Join(dir, "go")

	// The reaper is root and runs offenderBin, protected below: the
	// service master of this test.
	preload := StartOffenderSpec(t, u, OffenderSpec{Exe: "/usr/bin/sleep", Args: []string{"1000"}, Env: []string{"LD_PRELOAD=" + burnSO}, Reaped: true, Nice: BurnerNice})
	control := StartOffenderSpec(t, u, OffenderSpec{Exe: prot, Args: []string{"burn"}, Reaped: true, Nice: BurnerNice})
	shell := StartOffender(t, u, "exec", "--", "/bin/bash", "-c", prot+" burn; true")
	own := childWithExe(t, shell.PID, prot)
	execer := StartOffenderSpec(t, u, OffenderSpec{Exe: prot, Reaped: true,
		Args: []string{"exec", "--", protBash, "-c", bashWaiting(gate, "exec "+kitBash+" -c 'while :; do sleep 1; done'")}})
	if !Eventually(Deadline, func() bool { e, _ := Exe(execer.PID); return e == protBash }) {
		t.Fatalf("the execer never ran %s", protBash)
	}

	g := StartGuardd(t, Class(u)+fmt.Sprintf("protect {\n  exes = [%q, %q, %q, %q]\n}\n\n", offenderBin, prot, "/usr/bin/sleep", protBash)+
		reniceRule("hog", "")+fmt.Sprintf(`
rule "bash" {
  class = "c"
  when  = glob(proc.exe, [%q, %q])
  report {}
}
`, protBash, kitBash))

	g.WaitAudit(t, Action("hog", "renice", "done", preload.PID), Deadline)
	g.WaitAudit(t, Action("hog", "renice", "done", own), Deadline)
	// Both burned since before guardd started, as did the control: the
	// ticks that acted on them saw it too, and the execer before its exec.
	for _, ev := range g.Audit(t) {
		if int(ev.PID) == control.PID || int(ev.PID) == execer.PID {
			t.Errorf("an audit line names a protected process: %+v", ev)
		}
	}
	if n := Nice(t, control.PID); n != control.InitialNice {
		t.Errorf("protected burner nice = %d, want %d (untouched)", n, control.InitialNice)
	}

	out, errOut, code := RunGuardd(t, "explain", "--policy", g.PolicyPath, "--window", "1s", fmt.Sprint(preload.PID))
	if code != 0 || !strings.Contains(out, "not protected") || !strings.Contains(out, burnSO) {
		t.Errorf("guardd explain of the preloaded sleep: exit %d, want it to say why it is not protected (maps %s):\n%s%s", code, burnSO, out, errOut)
	}
	out, errOut, code = RunGuardd(t, "explain", "--policy", g.PolicyPath, "--window", "1s", fmt.Sprint(control.PID))
	if code != 0 || !strings.Contains(out, "started by root process") {
		t.Errorf("guardd explain of the protected burner: exit %d, want it protected as started by root:\n%s%s", code, out, errOut)
	}

	// The protected process execs customer code, comm unchanged: no longer
	// protected.
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ev := g.WaitAudit(t, Action("bash", "report", "done", execer.PID), Deadline)
	if ev.Exe != kitBash {
		t.Errorf("after the exec: event exe %q, want %q", ev.Exe, kitBash)
	}
	if !Alive(control.ID) {
		t.Error("the protected burner died")
	}
}

// A burner that hands its work to a new process every second never
// burns long under one pid: a per-process rule's `for` restarts with every
// pid and never completes. The per-user rule sees the user burn all along.
// Control: another user's single short burst, shorter than the `for`, does
// not trigger it.
func TestPidHopperTriggersUserRule(t *testing.T) {
	t.Parallel()
	hopUser, burstUser := NewUser(t), NewUser(t)
	hopper := StartOffenderSpec(t, hopUser, OffenderSpec{Args: []string{"hop", "-every", "1s"}, Reaped: true, Nice: BurnerNice})
	burst := StartOffenderSpec(t, burstUser, OffenderSpec{Args: []string{"burst", "-for", "2s"}, Nice: BurnerNice})
	g := StartGuardd(t, Class(hopUser, burstUser)+fmt.Sprintf(`rule "hog" {
  class = "c"
  when  = proc.cpu_percent > %d
  for   = "4s"
  report {}
}

rule "user-cpu" {
  class    = "c"
  when     = user.cpu_percent > %d
  for      = "4s"
  cooldown = "1h"
  renice {
    nice = 19
  }
}
`, HogPercent, HogPercent))
	ev := g.WaitAudit(t, func(e Event) bool {
		return e.Rule == "user-cpu" && e.Action == "renice" && e.Outcome == "done" && e.UID == hopUser.UID
	}, Deadline)
	t.Logf("user-cpu: %v on pid %d (the hopper started as %d)", ev.Values, ev.PID, hopper.PID)
	if int(ev.PID) == hopper.PID {
		t.Errorf("the user rule acted on the first hopper process %d: it should have hopped on within the 4s", hopper.PID)
	}
	// The copies inherit the nice value: the hopping user stays reniced.
	if !Eventually(Deadline, func() bool {
		for _, pid := range PIDsOfUID(hopUser.UID) {
			if st, err := ReadStat(pid); err == nil && st.Comm == "offender" && st.Nice == 19 && pid != int(ev.PID) {
				return true
			}
		}
		return false
	}) {
		t.Error("no later hopper process runs at nice 19")
	}
	for _, e := range g.Audit(t) {
		if e.UID == burstUser.UID && e.Rule == "user-cpu" {
			t.Errorf("the short burst triggered the user rule: %+v", e)
		}
		if e.UID == hopUser.UID && e.Rule == "hog" {
			t.Errorf("the per-process rule caught a hopper process (it should hop faster than its for): %+v", e)
		}
	}
	if st, err := ReadStat(burst.PID); err != nil || st.Nice != burst.InitialNice {
		t.Errorf("burst process nice %d (%v), want %d", st.Nice, err, burst.InitialNice)
	}
}
