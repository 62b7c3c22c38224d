//go:build linux

package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// defaultLongRunner returns the embedded default policy's long-runner for
// class "c", with seconds for its day and its 10 minutes.
func defaultLongRunner(t testing.TB) string {
	t.Helper()
	out, _, code := RunGuardd(t, "default-policy")
	if code != 0 {
		t.Fatal("guardd default-policy failed")
	}
	i := strings.Index(out, `rule "long-runner"`)
	if i < 0 {
		t.Fatal("the default policy has no long-runner")
	}
	text := out[i : i+strings.Index(out[i:], "\n}\n")+3]
	text = strings.ReplaceAll(text, `"customers"`, `"c"`)
	for _, r := range [][2]string{{"proc.age_seconds > 86400", "proc.age_seconds > 3"}, {`for   = "10m"`, `for   = "1s"`}} {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("the default long-runner no longer reads %q:\n%s", r[0], text)
		}
		text = strings.ReplaceAll(text, r[0], r[1])
	}
	return text
}

// The default long-runner (its day made seconds) spares what runs in a
// live protected session: a sleep under a protected shell that a root
// service running a protected executable started, as sshd starts a
// session. Control: the same shell binary started by the customer, and the
// sleep under it, are ended (the customer's exec of a protected binary is
// no session).
func TestLongRunnerSparesSessions(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	dir := ExecDir(t)
	session := filepath.Join(dir, "session-shell")
	CopyFile(t, "/bin/bash", session, 0o755)
	// The reaper (root, running offenderBin, protected below) is the
	// session's root service; the shell says ready itself.
	sess := StartOffenderSpec(t, u, OffenderSpec{Exe: session, Reaped: true,
		Args: []string{"-c", `echo "ready $$ $(nice)"; /usr/bin/sleep 1000; true`}})
	inSession := childWithExe(t, sess.PID, "/usr/bin/sleep")
	own := StartOffender(t, u, "exec", "--", session, "-c", "/usr/bin/sleep 1000; true")
	if !Eventually(Deadline, func() bool { e, _ := Exe(own.PID); return e == session }) {
		t.Fatalf("the customer's shell never ran %s", session)
	}
	orphaned := childWithExe(t, own.PID, "/usr/bin/sleep")
	st, err := ReadStat(inSession)
	if err != nil {
		t.Fatal(err)
	}
	inID := ProcID{PID: int32(inSession), StartTime: st.StartTime}

	g := StartGuardd(t, Class(u)+fmt.Sprintf("protect {\n  exes = [%q, %q]\n}\n\n", offenderBin, session)+defaultLongRunner(t))
	g.WaitAudit(t, Action("long-runner", "kill", "done", orphaned), Deadline)
	g.WaitAudit(t, Action("long-runner", "kill", "done", own.PID), Deadline)
	// The spared sleep is older than both, so the tick that ended them
	// held for it too had it not been spared.
	for _, ev := range g.Audit(t) {
		if int(ev.PID) == inSession || int(ev.PID) == sess.PID {
			t.Errorf("an audit line names the session or what runs in it: %+v", ev)
		}
	}
	if !Alive(inID) || !Alive(sess.ID) {
		t.Errorf("the session (alive %v) or its sleep (alive %v) died", Alive(sess.ID), Alive(inID))
	}
}

// `guardd check` refuses a whole-user step in a per-process rule and a
// nice that raises priority, each with its hint. Control: the same rules
// written for the user, and with nice 19, pass.
func TestCheckScopeAndNice(t *testing.T) {
	t.Parallel()
	const class = "class \"c\" {\n  uids = [\"1000-59999\"]\n}\n"
	bad := class + `rule "storm" {
  class = "c"
  when  = user.procs > 300 || proc.cpu_percent > 90
  kill_user {}
}
rule "boost" {
  class = "c"
  when  = proc.cpu_percent > 90
  renice {
    nice = -5
  }
}
`
	good := strings.NewReplacer("|| proc.cpu_percent > 90\n", "|| user.cpu_percent > 90\n", "nice = -5", "nice = 19").Replace(bad)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.hcl"), bad)
	writeFile(t, filepath.Join(dir, "good.hcl"), good)
	_, errOut, code := runCheck(t, nil, filepath.Join(dir, "bad.hcl"))
	if code == 0 {
		t.Fatal("guardd check accepted kill_user in a process rule and nice = -5")
	}
	for _, want := range []string{
		"bad.hcl:7,3: Error: User step in a process rule",
		"kill_user acts on the whole user", "proc.cpu_percent", "or use kill",
		"bad.hcl:13,12: Error: Nice value raises priority", "only lowers",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("guardd check says no %q:\n%s", want, errOut)
		}
	}
	if out, errOut, code := runCheck(t, nil, filepath.Join(dir, "good.hcl")); code != 0 {
		t.Errorf("the control: guardd check exit %d:\n%s%s", code, out, errOut)
	}
}

// scope = "process" makes a rule of only user.* act on each of the user's
// processes: a report line per process. Control: the same rule without
// scope reports the user once, with no process.
func TestDeclaredProcessScope(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	a := StartOffender(t, u, "sleep")
	b := StartOffender(t, u, "sleep")
	g := StartGuardd(t, Class(u)+`rule "each" {
  class = "c"
  scope = "process"
  when  = user.procs >= 2
  report {}
}

rule "once" {
  class = "c"
  when  = user.procs >= 2
  report {}
}
`)
	g.WaitAudit(t, Action("each", "report", "done", a.PID), Deadline)
	g.WaitAudit(t, Action("each", "report", "done", b.PID), Deadline)
	once := g.WaitAudit(t, Action("once", "report", "done", 0), Deadline)
	if once.PID != 0 || once.UID != u.UID {
		t.Errorf("the user rule's report names pid %d, uid %d; want no process, uid %d", once.PID, once.UID, u.UID)
	}
	for _, ev := range g.Audit(t) {
		if ev.Rule == "each" && ev.PID == 0 {
			t.Errorf("the process rule reported the user as a whole: %+v", ev)
		}
		if ev.Rule == "once" && ev.PID != 0 {
			t.Errorf("the user rule reported a process: %+v", ev)
		}
	}
}
