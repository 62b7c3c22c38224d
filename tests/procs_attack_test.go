//go:build linux

package tests

import (
	"fmt"
	"os/exec"
	"path/filepath"
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
	control := StartBurner(t, u)
	// The leader exits right after "ready": wait for it to show so.
	if !Eventually(Deadline, func() bool { st, err := ReadStat(att.PID); return err == nil && st.State == 'Z' && st.Threads > 1 }) {
		t.Fatalf("pthread_exit offender %d: leader not shown as exited", att.PID)
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
	g.WaitAudit(t, Action("hog", "kill", "done", att.PID), Deadline)
	WaitGone(t, att.ID, Deadline)
	for _, ev := range g.Audit(t) {
		if int(ev.PID) == att.PID && ev.Outcome == "skipped" {
			t.Errorf("a step on the pthread_exit process was skipped: %+v", ev)
		}
	}
}
