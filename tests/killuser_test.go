//go:build linux

package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// protectOffender is a protect block that lists the offender binary: an
// offender run under the tests' root reaper (which runs that binary) is a
// protected session, as a customer's sshd session under a root sshd is.
func protectOffender() string {
	return fmt.Sprintf("protect {\n  exes = [%q]\n}\n\n", offenderBin)
}

// bashBomb starts a bash fork bomb of u that waits for trigger to exist,
// under the root reaper, capped at 150 processes by the policy's limits.
func bashBomb(t *testing.T, u *User, trigger string) *Offender {
	return StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"-nproc", "2000", "exec", "--", "/bin/bash", "-c",
		fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done; b(){ b|b& }; b; sleep 1000", trigger)}})
}

// checkRunning fails the test unless o is alive and not stopped.
func checkRunning(t *testing.T, o *Offender, what string) {
	t.Helper()
	// A later sweep of the same storm (its rule fires again while the
	// fork rate of the last second is still high) stops the session for
	// as long as it lasts, then resumes it: wait for the last one.
	var st Stat
	var err error
	Eventually(Deadline, func() bool {
		st, err = ReadStat(o.PID)
		return err != nil || st.State != 'T' && st.State != 't'
	})
	switch {
	case !Alive(o.ID):
		t.Errorf("%s (pid %d) did not survive kill_user", what, o.PID)
	case err != nil || st.State == 'T' || st.State == 't':
		t.Errorf("%s (pid %d) survived but is stopped: state %c (%v)", what, o.PID, st.State, err)
	}
}

// waitOnly waits until the only live process of u is keep (none when keep
// is nil).
func waitOnly(t *testing.T, u *User, keep *Offender) {
	t.Helper()
	want := 0
	if keep != nil {
		want = 1
	}
	if !Eventually(Deadline, func() bool { return liveProcs(u.UID) == want }) {
		t.Fatalf("%d live processes of %s after kill_user, want %d: %v", liveProcs(u.UID), u.Name, want, PIDsOfUID(u.UID))
	}
}

// TestKillUserSparesProtectedSession: a fork bomb of a user who also has a
// protected session process (started by a root parent that setuid()s to
// the customer, like sshd) is ended, and the session survives, running.
// Control: the same bomb of a user without a protected process is ended by
// the fast path, kill(-1) as the user.
func TestKillUserSparesProtectedSession(t *testing.T) {
	t.Parallel()
	u, ctl := NewUser(t), NewUser(t)
	dir := ExecDir(t)
	trigger := filepath.Join(dir, "go")
	session := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"sleep", "session"}})
	// Hidden beside the bomb: a process whose main thread exited shows a
	// zombie leader; kill(-1) ends it, and so must the sweep.
	hidden := StartOffenderSpec(t, u, OffenderSpec{Exe: buildC(t, "pthread_exit.c", dir, "pthread_exit", "-lpthread"), Args: []string{"sleep"}})
	if !Eventually(Deadline, func() bool { st, err := ReadStat(hidden.PID); return err == nil && st.State == 'Z' && st.Threads > 1 }) {
		t.Fatalf("pthread_exit offender %d: leader not shown as exited", hidden.PID)
	}
	bomb := bashBomb(t, u, trigger)
	ctlBomb := bashBomb(t, ctl, trigger)
	g := StartGuardd(t, Class(u, ctl)+protectOffender()+capLimit(150)+stormRule(100, 60))
	waitCapped(t, bomb.PID, 150)
	waitCapped(t, ctlBomb.PID, 150)

	start := time.Now()
	writeFile(t, trigger, "")
	ev := g.WaitAudit(t, func(e Event) bool {
		return Action("fork-storm", "kill_user", "done", 0)(e) && e.UID == u.UID
	}, Deadline)
	ctlEv := g.WaitAudit(t, func(e Event) bool {
		return Action("fork-storm", "kill_user", "done", 0)(e) && e.UID == ctl.UID
	}, Deadline)
	waitOnly(t, u, session)
	waitOnly(t, ctl, nil)
	t.Logf("with a protected session: %s after the trigger: %q", time.Since(start).Round(time.Millisecond), ev.Reason)
	t.Logf("control: %q", ctlEv.Reason)
	checkRunning(t, session, "the protected session")
	if !Eventually(Deadline, func() bool { return !Alive(hidden.ID) }) {
		t.Errorf("the process with an exited main thread (pid %d) survived kill_user", hidden.PID)
	}
	if !strings.Contains(ev.Reason, "through pidfds") || !strings.Contains(ev.Reason, fmt.Sprintf("pid %d (", session.PID)) {
		t.Errorf("kill_user with a protected session: reason %q, want the pidfd kills and the spared session named", ev.Reason)
	}
	if !strings.Contains(ctlEv.Reason, "SIGKILL to every process") {
		t.Errorf("control kill_user: reason %q, want the fast path (kill(-1) as the user)", ctlEv.Reason)
	}
	checkGuarddStillRoot(t, g, u)
}

// TestKillUserOutlastsStopper: a customer that SIGSTOPs every process of
// its uid every 2 ms (a helper that has become the customer included)
// still has its processes ended by kill_user, on the sweep (with a
// protected session) and on the fast path. Control: before guardd starts,
// the stopper does stop the user's other processes: the attack is on.
func TestKillUserOutlastsStopper(t *testing.T) {
	t.Parallel()
	for _, withSession := range []bool{true, false} {
		name := map[bool]string{true: "sweep", false: "fast"}[withSession]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u := NewUser(t)
			dir := ExecDir(t)
			own := filepath.Join(dir, "own-binary") // the customer's: not protected
			CopyFile(t, offenderBin, own, 0o755)
			started, gate := filepath.Join(dir, "fork"), filepath.Join(dir, "stop")
			writeFile(t, started, "")
			var session *Offender
			if withSession {
				session = StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"sleep", "session"}})
			}
			StartOffenderSpec(t, u, OffenderSpec{Exe: own, Reaped: true, Args: []string{"-nproc", "100", "fork-until", started}})
			if !Eventually(Deadline, func() bool { return liveProcs(u.UID) > 60 }) {
				t.Fatalf("the forker made only %d processes", liveProcs(u.UID))
			}
			// A net above the forker's: the user is at about 100 tasks now.
			canary := StartOffenderSpec(t, u, OffenderSpec{Exe: own, Args: []string{"-nproc", "300", "sleep", "canary"}})
			StartOffenderSpec(t, u, OffenderSpec{Exe: own, Args: []string{"-nproc", "300", "stop-all", gate}})
			writeFile(t, gate, "")
			if !Eventually(Deadline, func() bool { st, err := ReadStat(canary.PID); return err == nil && st.State == 'T' }) {
				t.Fatal("the stopper never stopped the canary: the attack is not on")
			}

			g := StartGuardd(t, Class(u)+protectOffender()+stormRule(1000, 50))
			ev := g.WaitAudit(t, Action("fork-storm", "kill_user", "done", 0), Deadline)
			waitOnly(t, u, session)
			t.Logf("%s: %q", name, ev.Reason)
			if withSession {
				checkRunning(t, session, "the protected session")
			}
		})
	}
}

// TestKillUserSweepRunsBesideTheLoop: a kill_user sweep that cannot
// settle (a vfork parent waits in the kernel with its SIGSTOP pending, so
// the sweep runs its whole budget) does not hold up another user's fork
// storm: that storm's kill_user is journalled while the sweep still runs.
// The sweep still ends the unprotected processes and spares the session.
func TestKillUserSweepRunsBesideTheLoop(t *testing.T) {
	t.Parallel()
	a, b := NewUser(t), NewUser(t)
	dir := ExecDir(t)
	trigger := filepath.Join(dir, "go")
	session := StartOffenderSpec(t, a, OffenderSpec{Reaped: true, Args: []string{"sleep", "session"}})
	vf := buildC(t, "vfork_hang.c", dir, "vfork_hang")
	hang := StartOffenderSpec(t, a, OffenderSpec{Exe: vf, Reaped: true})
	child := childWithExe(t, hang.PID, vf)
	if !Eventually(Deadline, func() bool { st, err := ReadStat(hang.PID); return err == nil && st.State == 'D' }) {
		t.Fatalf("vfork parent %d never waited in the kernel", hang.PID)
	}
	bashBomb(t, b, trigger)
	g := StartGuardd(t, fmt.Sprintf("class \"a\" {\n  users = [%q]\n}\n\nclass \"c\" {\n  users = [%q]\n}\n\n", a.Name, b.Name)+
		protectOffender()+capLimit(150)+stormRule(100, 60)+`rule "hang" {
  class    = "a"
  when     = user.procs >= 3
  cooldown = "1h"
  kill_user {}
}
`)
	// The sweep has stopped the vfork child: it is under way.
	if !Eventually(Deadline, func() bool { st, err := ReadStat(child); return err == nil && st.State == 'T' }) {
		t.Fatalf("the sweep never stopped the vfork child %d", child)
	}
	start := time.Now()
	writeFile(t, trigger, "")
	storm := g.WaitAudit(t, Action("fork-storm", "kill_user", "done", 0), Deadline)
	sweep := g.WaitAudit(t, Action("hang", "kill_user", "done", 0), Deadline)
	t.Logf("storm of %s ended %s after the trigger (%q); sweep of %s: %q", b.Name, storm.Time.Sub(start).Round(time.Millisecond), storm.Reason, a.Name, sweep.Reason)
	if !storm.Time.Before(sweep.Time) {
		t.Errorf("the storm's kill_user (%s) waited for the other user's sweep (%s)", storm.Time, sweep.Time)
	}
	if !strings.Contains(sweep.Reason, "still running after") {
		t.Errorf("sweep reason %q, want it to say a process never stopped (the vfork parent)", sweep.Reason)
	}
	waitOnly(t, b, nil)
	waitOnly(t, a, session)
	checkRunning(t, session, "the protected session")
}
