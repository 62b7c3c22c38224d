//go:build linux

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stormRule is a fork-storm rule on class "c": kill_user once the user
// forks hard or holds too many processes; a short cooldown so that a test
// may bomb twice.
func stormRule(forksPerSec, procs int) string {
	return fmt.Sprintf(`rule "fork-storm" {
  class    = "c"
  when     = user.forks_per_sec > %d || user.procs > %d
  cooldown = "2s"
  kill_user {}
}
`, forksPerSec, procs)
}

// capLimit is a limits block for class "c".
func capLimit(procs int) string {
	return fmt.Sprintf("limits \"c\" {\n  class = \"c\"\n  procs = %d\n}\n\n", procs)
}

// procLimit reads the soft and hard "Max processes" of pid.
func procLimit(t testing.TB, pid int) (soft, hard string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max processes") {
			f := strings.Fields(strings.TrimPrefix(line, "Max processes"))
			if len(f) >= 2 {
				return f[0], f[1]
			}
		}
	}
	t.Fatalf("no Max processes line in /proc/%d/limits", pid)
	return "", ""
}

// waitCapped waits until guardd has set pid's process cap to n.
func waitCapped(t testing.TB, pid, n int) {
	t.Helper()
	want := strconv.Itoa(n)
	if !Eventually(Deadline, func() bool {
		soft, hard := procLimit(t, pid)
		return soft == want && hard == want
	}) {
		soft, hard := procLimit(t, pid)
		t.Fatalf("process %d: Max processes %s/%s, want %s/%s from the limits block", pid, soft, hard, want, want)
	}
}

// liveProcs counts the user's processes that are not zombies.
func liveProcs(uid uint32) int {
	n := 0
	for _, pid := range PIDsOfUID(uid) {
		if st, err := ReadStat(pid); err == nil && st.State != 'Z' {
			n++
		}
	}
	return n
}

// watchPeak samples the user's process count every 10ms until stop is
// closed and returns the highest count seen and when the count was first
// above 1. (A coarse figure for the log: the benchmark measures the peak
// exactly, from a pids cgroup.)
func watchPeak(uid uint32, stop <-chan struct{}) <-chan [2]int64 {
	out := make(chan [2]int64, 1)
	go func() {
		peak, first := 0, int64(0)
		for {
			n := len(PIDsOfUID(uid))
			peak = max(peak, n)
			if n > 1 && first == 0 {
				first = time.Now().UnixNano()
			}
			select {
			case <-stop:
				out <- [2]int64{int64(peak), first}
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return out
}

// TestForkBombIsEnded: a bash fork bomb under the standing cap is held at
// the cap by the kernel and ended by kill_user: no process of the user is
// left, guardd acted once, and every thread of guardd is still root.
func TestForkBombIsEnded(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	dir := ExecDir(t)
	trigger := filepath.Join(dir, "go")
	g := StartGuardd(t, Class(u)+capLimit(150)+stormRule(100, 60))

	bomb := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"-nproc", "2000", "exec", "--", "/bin/bash", "-c",
		fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done; b(){ b|b& }; b; sleep 1000", trigger)}})
	waitCapped(t, bomb.PID, 150)

	stop := make(chan struct{})
	peakc := watchPeak(u.UID, stop)
	start := time.Now()
	writeFile(t, trigger, "")
	ev := g.WaitAudit(t, Action("fork-storm", "kill_user", "done", 0), Deadline)
	if !Eventually(Deadline, func() bool { return liveProcs(u.UID) == 0 }) {
		t.Fatalf("processes of %s still alive after kill_user: %v", u.Name, PIDsOfUID(u.UID))
	}
	gone := time.Since(start)
	close(stop)
	res := <-peakc
	t.Logf("bash bomb: peak %d processes (cap 150), zero live processes %s after the trigger, kill_user %q", res[0], gone.Round(time.Millisecond), ev.Reason)
	if res[0] > 150 {
		t.Errorf("peak %d processes, above the cap of 150", res[0])
	}
	if ev.UID != u.UID || ev.Signal != "KILL" || ev.Values["user.forks_per_sec"] == nil {
		t.Errorf("kill_user event: uid %d signal %q values %v", ev.UID, ev.Signal, ev.Values)
	}
	checkGuarddStillRoot(t, g, u)
	t.Logf("decided %s after the trigger", ev.Time.Sub(start).Round(time.Millisecond))
}

// TestGoForkerIsEnded: a process that forks as fast as it can (raw
// clone), with no standing cap, only its RLIMIT_NPROC safety net: ended by
// kill_user.
func TestGoForkerIsEnded(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	g := StartGuardd(t, Class(u)+stormRule(200, 300))
	stop := make(chan struct{})
	peakc := watchPeak(u.UID, stop)
	start := time.Now()
	StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"-nproc", "1000", "forker"}})
	ev := g.WaitAudit(t, Action("fork-storm", "kill_user", "done", 0), Deadline)
	if !Eventually(Deadline, func() bool { return liveProcs(u.UID) == 0 }) {
		t.Fatalf("processes of %s still alive after kill_user: %d", u.Name, liveProcs(u.UID))
	}
	gone := time.Since(start)
	close(stop)
	res := <-peakc
	t.Logf("Go forker: peak %d processes (safety net 1000), decided %s and zero live processes %s after start; %s",
		res[0], ev.Time.Sub(start).Round(time.Millisecond), gone.Round(time.Millisecond), ev.Reason)
}

// checkGuarddStillRoot: after kill_user, every thread of guardd still has
// uid 0 (the helper changed its own credentials, never guardd's), and the
// customer cannot signal guardd.
func checkGuarddStillRoot(t *testing.T, g *Guardd, u *User) {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", g.Cmd.Process.Pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of guardd: %v", err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue // a thread that exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Uid:") && strings.Fields(line)[1:] != nil {
				f := strings.Fields(line)
				if f[1] != "0" || f[2] != "0" || f[3] != "0" {
					t.Errorf("guardd thread %s: %s", task, line)
				}
			}
		}
	}
	cmd := exec.Command("/bin/kill", "-s", "0", strconv.Itoa(g.Cmd.Process.Pid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("user %s can signal guardd (kill -0 %d succeeded)", u.Name, g.Cmd.Process.Pid)
	} else if !strings.Contains(string(out), "not permitted") {
		t.Errorf("kill -0 guardd as %s: %v: %s (want: Operation not permitted)", u.Name, err, out)
	}
}

// TestProcessCap: the limits block sets RLIMIT_NPROC on the user's
// processes, also on one started before guardd, and the kernel refuses the
// fork beyond it.
func TestProcessCap(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	dir := ExecDir(t)
	trigger := filepath.Join(dir, "go")
	early := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"-nproc", "500", "fork-until", trigger}})
	StartGuardd(t, Class(u)+capLimit(40))
	waitCapped(t, early.PID, 40)
	writeFile(t, trigger, "")
	line := waitForked(t, early)
	var n int
	var errno string
	if _, err := fmt.Sscanf(line, "forked %d %s", &n, &errno); err != nil {
		t.Fatalf("offender said %q", line)
	}
	total := len(PIDsOfUID(u.UID))
	t.Logf("forked %d children before %s; the user has %d processes", n, errno, total)
	if errno != "EAGAIN" {
		t.Errorf("fork failed with %s, want EAGAIN (RLIMIT_NPROC)", errno)
	}
	if total > 40 {
		t.Errorf("the user has %d processes, above its cap of 40", total)
	}
}

// TestMonitorModeSetsNoCap: in monitor mode (the packaged policy's) a
// limits block caps nothing and guardd says so; TestProcessCap beside it
// is the control.
func TestMonitorModeSetsNoCap(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	dir := ExecDir(t)
	trigger := filepath.Join(dir, "go")
	ns := newNotifySocket(t)
	o := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"-nproc", "60", "fork-until", trigger}})
	soft0, hard0 := procLimit(t, o.PID)
	g := StartGuarddConfig(t, Config{Body: Class(u) + capLimit(20), Flags: []string{"--mode", "monitor"},
		Env: []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=60000000"}})
	g.WaitLog(t, func(l LogLine) bool {
		return strings.HasPrefix(l.Msg, "monitor mode: limits blocks set no process caps")
	}, Deadline)
	// A few completed ticks (the loop feeds the watchdog after each): the
	// offender has been sampled and would have been capped by now.
	for range 3 {
		ns.wait(t, "WATCHDOG=1")
	}
	if soft, hard := procLimit(t, o.PID); soft != soft0 || hard != hard0 {
		t.Errorf("monitor mode changed the offender's RLIMIT_NPROC from %s/%s to %s/%s", soft0, hard0, soft, hard)
	}
	writeFile(t, trigger, "")
	line := waitForked(t, o)
	var n int
	var errno string
	if _, err := fmt.Sscanf(line, "forked %d %s", &n, &errno); err != nil {
		t.Fatalf("offender said %q", line)
	}
	if n <= 20 {
		t.Errorf("forked only %d children (%s): monitor mode capped the user at 20", n, errno)
	}
}

// waitForked waits for the fork-until offender's result line.
func waitForked(t *testing.T, o *Offender) string {
	t.Helper()
	var line string
	if !Eventually(Deadline, func() bool {
		for _, l := range o.Output() {
			if strings.HasPrefix(l, "forked ") {
				line = l
				return true
			}
		}
		return false
	}) {
		t.Fatalf("offender %d never reported its forks; output %q", o.PID, o.Output())
	}
	return line
}

// TestStopAndResumeUser: stop_user freezes every process of the user;
// after a reload with a resume_user rule they run again.
func TestStopAndResumeUser(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	var offs []*Offender
	for range 3 {
		offs = append(offs, StartOffender(t, u, "sleep"))
	}
	offs = append(offs, StartBurner(t, u))
	g := StartGuardd(t, Class(u)+`rule "freeze" {
  class = "c"
  when  = user.procs >= 4
  stop_user {}
}
`)
	g.WaitAudit(t, Action("freeze", "stop_user", "done", 0), Deadline)
	for _, o := range offs {
		if st, err := ReadStat(o.PID); err != nil || st.State != 'T' {
			t.Errorf("process %d after stop_user: state %c (%v), want T", o.PID, st.State, err)
		}
	}
	g.SetPolicy(t, Class(u)+`rule "thaw" {
  class = "c"
  when  = user.procs >= 4
  resume_user {}
}
`)
	g.WaitAudit(t, Action("thaw", "resume_user", "done", 0), Deadline)
	for _, o := range offs {
		if !Eventually(Deadline, func() bool { st, err := ReadStat(o.PID); return err == nil && st.State != 'T' }) {
			t.Errorf("process %d still stopped after resume_user", o.PID)
		}
	}
}

// TestStopUserResumeAfter: stop_user { resume_after } resumes the user on
// time although the frozen user's condition stays true and no rule
// resumes it; a stop without resume_after (TestStopAndResumeUser) is the
// control that stays frozen until resume_user. The second user, frozen
// for an hour, must stay frozen through the first one's resume (a
// kill(-1, SIGCONT) in guardd's session once reached every process of the
// session, whatever its uid), and is resumed when guardd stops.
func TestStopUserResumeAfter(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	v := NewUser(t)
	var offs, longOffs []*Offender
	for range 3 {
		offs = append(offs, StartOffender(t, u, "sleep"))
		longOffs = append(longOffs, StartOffender(t, v, "sleep"))
	}
	g := StartGuardd(t, Class(u, v)+`rule "freeze" {
  class    = "c"
  when     = user.procs >= 3 && user.name == "`+u.Name+`"
  cooldown = "1h"
  stop_user {
    resume_after = "2s"
  }
}

rule "freeze-long" {
  class    = "c"
  when     = user.procs >= 3 && user.name == "`+v.Name+`"
  cooldown = "1h"
  stop_user {
    resume_after = "1h"
  }
}
`)
	stopped := g.WaitAudit(t, Action("freeze", "stop_user", "done", 0), Deadline)
	resumed := g.WaitAudit(t, Action("freeze", "resume_user", "done", 0), Deadline)
	if d := resumed.Time.Sub(stopped.Time); d < 2*time.Second {
		t.Errorf("resumed %v after the stop, before resume_after (2s)", d)
	}
	for _, o := range offs {
		if !Eventually(Deadline, func() bool { st, err := ReadStat(o.PID); return err == nil && st.State != 'T' }) {
			t.Errorf("process %d still stopped after resume_after", o.PID)
		}
	}
	g.WaitAudit(t, Action("freeze-long", "stop_user", "done", 0), Deadline)
	for _, o := range longOffs {
		if st, err := ReadStat(o.PID); err != nil || st.State != 'T' {
			t.Errorf("process %d of the 1h freeze: state %c (%v), want T", o.PID, st.State, err)
		}
	}
	g.Stop(t)
	for _, o := range longOffs {
		if !Eventually(Deadline, func() bool { st, err := ReadStat(o.PID); return err == nil && st.State != 'T' }) {
			t.Errorf("process %d still stopped after guardd stopped", o.PID)
		}
	}
}

// TestZombiesAreReaped: a parent that reaps on SIGCHLD reaps its zombies
// after reap's SIGCHLD and lives on; one that does not is ended, so that
// its zombies are reaped (by the subreaper standing in for init).
func TestZombiesAreReaped(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	polite := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"zombies", "5", "reap"}})
	rude := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"zombies", "6"}})
	g := StartGuardd(t, Class(u)+`rule "zombies" {
  class = "c"
  when  = proc.zombie_children >= 5
  reap {
    grace = "1s"
  }
}
`)
	g.WaitAudit(t, Action("zombies", "reap", "done", polite.PID), Deadline)
	g.WaitAudit(t, Action("zombies", "reap", "skipped", polite.PID), Deadline) // the follow-up: reaped after SIGCHLD
	if !Alive(polite.ID) {
		t.Error("a parent that reaped after SIGCHLD was ended")
	}
	if n := zombiesOf(polite.PID); n != 0 {
		t.Errorf("%d zombies left under the polite parent", n)
	}
	ev := g.WaitAudit(t, func(e Event) bool {
		return e.Rule == "zombies" && e.Action == "reap" && int(e.PID) == rude.PID && e.Signal == "TERM" && e.Outcome == "done"
	}, Deadline)
	WaitGone(t, rude.ID, Deadline)
	t.Logf("rude parent: %s", ev.Reason)
	if !Eventually(Deadline, func() bool { return zombiesOfUID(u.UID) == 0 }) {
		t.Errorf("zombies of %s left after their parent was ended", u.Name)
	}
}

// TestZombieWithProtectedParentIsReported: when the zombies' parent is
// protected, reap reports and touches nothing.
func TestZombieWithProtectedParentIsReported(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	dir := ExecDir(t)
	exe := filepath.Join(dir, "protected-parent")
	CopyFile(t, offenderBin, exe, 0o755)
	parent := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Exe: exe, Args: []string{"zombies", "5"}})
	// offenderBin: the root reaper is the protected service that started it.
	g := StartGuardd(t, Class(u)+fmt.Sprintf("protect {\n  exes = [%q, %q]\n}\n\n", exe, offenderBin)+`rule "zombies" {
  class = "c"
  when  = user.zombies >= 5
  reap {
    grace = "1s"
  }
}
`)
	ev := g.WaitAudit(t, Action("zombies", "reap", "", parent.PID), Deadline)
	if ev.Outcome != "skipped" || !strings.Contains(ev.Reason, "protected") {
		t.Errorf("reap on a protected parent: outcome %q reason %q, want skipped, protected", ev.Outcome, ev.Reason)
	}
	if !Alive(parent.ID) || zombiesOf(parent.PID) != 5 {
		t.Errorf("protected parent touched: alive %v, %d zombies", Alive(parent.ID), zombiesOf(parent.PID))
	}
}

func zombiesOf(parent int) int {
	n := 0
	for _, pid := range allPIDs() {
		if st, err := ReadStat(pid); err == nil && st.State == 'Z' && st.PPID == parent {
			n++
		}
	}
	return n
}

func zombiesOfUID(uid uint32) int {
	n := 0
	for _, pid := range PIDsOfUID(uid) {
		if st, err := ReadStat(pid); err == nil && st.State == 'Z' {
			n++
		}
	}
	return n
}

func allPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// TestLegitimateBurstIsLeftAlone: 200 short processes in a few seconds and
// a parallel build (make -j8 of a small C project) stay under the default
// policy's fork-storm rule.
func TestLegitimateBurstIsLeftAlone(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	dir := ExecDir(t)
	ns := newNotifySocket(t)
	// "measure" reports the fork rate it sees, for the log.
	g := StartGuarddConfig(t, Config{
		Body: Class(u) + defaultStormRules(t) + `
rule "measure" {
  class    = "c"
  mode     = "monitor"
  when     = user.forks_per_sec > 0
  cooldown = "1ms"
  report {}
}
`,
		Env: []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=60000000"},
	})

	burst := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"-nproc", "300", "exec", "--", "/bin/bash", "-c",
		"for i in $(seq 200); do /bin/true; done; echo burst-done"}})
	burst.WaitOutput(t, "burst-done", Deadline)

	if cc, err := exec.LookPath("cc"); err == nil {
		writeCProject(t, dir, 24, u)
		build := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"-nproc", "300", "exec", "--", "/bin/bash", "-c",
			fmt.Sprintf("cd %s && make -j8 CC=%s >/dev/null 2>&1 && echo build-done", dir, cc)}})
		build.WaitOutput(t, "build-done", 2*Deadline)
	} else {
		t.Log("no C compiler: the parallel build part is skipped")
	}
	// Nothing may fire late either: let guardd complete a few more ticks
	// (the loop feeds the watchdog after each) before reading its audit.
	for range 4 {
		ns.wait(t, "WATCHDOG=1")
	}
	peak := 0.0
	for _, ev := range g.Audit(t) {
		if ev.Rule == "measure" {
			if f, ok := ev.Values["user.forks_per_sec"].(float64); ok {
				peak = max(peak, f)
			}
			continue
		}
		if ev.UID == u.UID {
			t.Errorf("a legitimate burst was acted on: %+v", ev)
		}
	}
	t.Logf("highest user.forks_per_sec seen: %.0f", peak)
}

// defaultStormRules returns the embedded default policy's limits block and
// fork-storm rule for class "c".
func defaultStormRules(t testing.TB) string {
	t.Helper()
	out, _, code := RunGuardd(t, "default-policy")
	if code != 0 {
		t.Fatal("guardd default-policy failed")
	}
	var keep []string
	for _, block := range []string{`limits "customers"`, `rule "fork-storm"`} {
		i := strings.Index(out, block)
		if i < 0 {
			t.Fatalf("the default policy has no %s", block)
		}
		end := strings.Index(out[i:], "\n}\n")
		keep = append(keep, out[i:i+end+3])
	}
	return strings.ReplaceAll(strings.Join(keep, "\n"), `"customers"`, `"c"`)
}

// writeCProject writes n small C files and a Makefile that builds them,
// owned by u.
func writeCProject(t *testing.T, dir string, n int, u *User) {
	t.Helper()
	var objs []string
	for i := range n {
		src := fmt.Sprintf("int f%d(int x) { int s = 0; for (int i = 0; i < x; i++) s += i * %d; return s; }\n", i, i+1)
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%d.c", i)), src)
		objs = append(objs, fmt.Sprintf("f%d.o", i))
	}
	writeFile(t, filepath.Join(dir, "main.c"), "int main(void) { return 0; }\n")
	mk := fmt.Sprintf("prog: main.o %s\n\t$(CC) -o prog main.o %s\n%%.o: %%.c\n\t$(CC) -O2 -c $< -o $@\n", strings.Join(objs, " "), strings.Join(objs, " "))
	writeFile(t, filepath.Join(dir, "Makefile"), mk)
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", u.UID, u.GID), dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
}
