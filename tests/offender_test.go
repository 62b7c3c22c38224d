//go:build linux

package tests

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestOffenderSafetyNet checks the harness itself: every offender runs
// under its RLIMIT_NPROC, as its user, and its flags do what the tests
// rely on.
func TestOffenderSafetyNet(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	for _, tc := range []struct {
		args  []string
		nproc string
	}{
		{[]string{"sleep"}, "64"},
		{[]string{"-nproc", "7", "sleep"}, "7"},
		{[]string{"-nproc=9", "-threads", "2", "burn"}, "9"},
		{[]string{"-nproc", "50", "exec", "--", "/bin/sleep", "1000"}, "50"},
	} {
		o := StartOffender(t, u, tc.args...)
		if got := nprocLimit(t, o.PID); got != tc.nproc+" "+tc.nproc {
			t.Errorf("offender %v: RLIMIT_NPROC soft, hard = %s, want %s", tc.args, got, tc.nproc)
		}
		if uid, _ := realUID(o.PID); uid != u.UID {
			t.Errorf("offender %v runs as uid %d, want %d", tc.args, uid, u.UID)
		}
		o.Kill()
		<-o.Done()
	}

	named := StartOffenderSpec(t, u, OffenderSpec{Argv0: "sshd", Args: []string{"-name", "sshd", "sleep"}})
	if st, _ := ReadStat(named.PID); st.Comm != "sshd" || named.Argv[0] != "sshd" {
		t.Errorf("-name sshd: comm %q argv %q", st.Comm, named.Argv)
	}

	trap := StartOffender(t, u, "-trap-term", "sleep")
	trap.Cmd.Process.Signal(syscall.SIGTERM)
	if st := trap.WaitExit(t, Deadline); !st.Success() {
		t.Errorf("-trap-term: %v, want exit 0", st)
	}
	trap.WaitOutput(t, "term", Deadline)

	ignore := StartOffender(t, u, "-ignore-term", "sleep")
	ignore.Cmd.Process.Signal(syscall.SIGTERM)
	// SIGTERM is ignored in the kernel (SigIgn), so it is discarded
	// when sent: nothing to wait for.
	if !Alive(ignore.ID) || !sigIgnored(t, ignore.PID, syscall.SIGTERM) {
		t.Errorf("-ignore-term: alive %v, SIGTERM ignored %v", Alive(ignore.ID), sigIgnored(t, ignore.PID, syscall.SIGTERM))
	}
}

func nprocLimit(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Max processes"); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				return f[0] + " " + f[1]
			}
		}
	}
	t.Fatalf("no Max processes in /proc/%d/limits", pid)
	return ""
}

func sigIgnored(t *testing.T, pid int, sig syscall.Signal) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(rest), 16, 64)
			return err == nil && m&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}
