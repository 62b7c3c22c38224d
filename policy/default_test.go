package policy

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
)

func TestDefaultPolicy(t *testing.T) {
	p, diags := Default()
	if len(diags) != 0 || p == nil {
		t.Fatalf("default policy:%s", diagString(diags))
	}
	if p.Source != DefaultName {
		t.Errorf("Source = %q", p.Source)
	}
	// The guardd block documents the defaults; it must not change them
	// (on FreeBSD the state directory differs, see DefaultSettings).
	if p.Settings != DefaultSettings() {
		t.Errorf("default policy settings %+v differ from DefaultSettings %+v", p.Settings, DefaultSettings())
	}
	var names []string
	for _, r := range p.Rules {
		names = append(names, r.Name)
	}
	for _, want := range []string{"cpu-hog", "user-cpu-hog", "long-runner", "fd-leak", "temp-exe", "fork-storm", "zombies", "lock-squatter", "lock-waiter", "lock-holder", "tmp-spewer", "disk-full", "listen:customers"} {
		if p.Rule(want) == nil {
			t.Errorf("no rule %q (have %v)", want, names)
		}
	}
	for _, r := range p.Rules {
		want := ModeEnforce
		if r.Name == "temp-exe" || r.Name == "listen:customers" { // the listen block's own rule monitors with it
			want = ModeMonitor
		}
		if r.Mode != want {
			t.Errorf("%s: mode %q, want %q", r.Name, r.Mode, want)
		}
		wantScope := ScopeProcess
		switch r.Name {
		case "fork-storm", "tmp-spewer", "user-cpu-hog":
			wantScope = ScopeUser
		case "disk-full":
			if r.Class != nil || r.Scope != ScopeFilesystem {
				t.Errorf("%s: class %v scope %s", r.Name, r.Class, r.Scope)
			}
			continue
		}
		if r.Class == nil || r.Class.Name != "customers" || r.Scope != wantScope {
			t.Errorf("%s: class %v scope %s", r.Name, r.Class, r.Scope)
		}
		if !strings.HasPrefix(r.At(), DefaultName+":") {
			t.Errorf("%s: At() = %q", r.Name, r.At())
		}
	}
	hog := p.Rule("cpu-hog")
	if hog.For != 5*time.Minute || len(hog.Steps) != 2 || hog.Steps[0].Kind != StepRenice || hog.Steps[0].Nice != 19 ||
		hog.Steps[1].Kind != StepKill || hog.Steps[1].After != 30*time.Minute || hog.Steps[1].Grace != 10*time.Second {
		t.Errorf("cpu-hog = %+v", hog)
	}
	if got := fmt.Sprint(p.Class("customers").UIDs); got != "[1000-59999]" {
		t.Errorf("customers = %s", got)
	}
	if why := p.ProtectedProcess(&platform.Process{ProcID: platform.ProcID{PID: 99}, UID: 1500, EUID: 1500, Exe: "/usr/sbin/sshd"}, nil); why == "" {
		t.Error("sshd is not protected by the default")
	}
	// The file in the source tree is the embedded one.
	disk, err := os.ReadFile("default.hcl")
	if err != nil || !bytes.Equal(disk, DefaultSource) {
		t.Errorf("default.hcl differs from DefaultSource (%v)", err)
	}
}

// TestDefaultPolicyDecisions runs the default policy over a fake host with
// one offender per rule and the look-alikes that must be left alone.
func TestDefaultPolicyDecisions(t *testing.T) {
	p, diags := Default()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	const day = 24 * time.Hour
	users := map[uint32]*platform.UserStats{
		0:     {UID: 0, Name: "root"},
		33:    {UID: 33, Name: "www-data"},
		1500:  {UID: 1500, Name: "bob", Groups: []string{"bob"}},
		70000: {UID: 70000, Name: "outsider"},
	}
	host := *fakeHost()
	host.FilesOpenPercent = 85
	tests := []struct {
		pid    int32
		uid    uint32
		mutate func(*platform.Process)
		want   string // rules, space separated
	}{
		{1000, 1500, func(p *platform.Process) { p.CPUPercent = 95 }, "cpu-hog"},
		{1001, 1500, func(p *platform.Process) { p.CPUPercent = 80 }, ""}, // > 80, not >=
		{1002, 1500, func(p *platform.Process) { p.Age = 2 * day }, "long-runner"},
		{1003, 1500, func(p *platform.Process) { p.Age = 2 * day; p.State = 'Z' }, ""},
		{1004, 1500, func(p *platform.Process) { p.Age = day }, ""},
		{1005, 1500, func(p *platform.Process) { p.FDs = 5000 }, "fd-leak"},
		{1006, 1500, func(p *platform.Process) { p.FDs = 1500 }, "fd-leak"}, // file table 85 % full
		{1007, 1500, func(p *platform.Process) { p.FDs = -1 }, ""},          // not counted yet
		{1008, 1500, func(p *platform.Process) { p.Exe = "/tmp/kit/x" }, "temp-exe"},
		{1009, 1500, func(p *platform.Process) { p.Exe = "/dev/shm/a" }, "temp-exe"},
		{1010, 1500, func(p *platform.Process) { p.Exe = "/var/tmp/.x/y/z" }, "temp-exe"},
		{1011, 1500, func(p *platform.Process) { p.ExeDeleted = true }, "temp-exe"},
		{1012, 1500, func(p *platform.Process) { p.Exe = "/home/bob/tmp/x" }, ""},
		{1013, 1500, func(p *platform.Process) { p.Exe, p.Comm = "/tmp/sshd", "sshd" }, "temp-exe"},
		{1014, 1500, func(p *platform.Process) {
			p.Exe, p.Comm, p.Cmdline, p.CPUPercent, p.Age = "/home/bob/sshd", "sshd", "/usr/sbin/sshd -D", 99, 3*day
		}, "cpu-hog long-runner"},
		{1015, 1500, func(p *platform.Process) {
			p.Exe, p.CPUPercent, p.Age, p.FDs = "/usr/sbin/sshd", 99, 3*day, 9000
		}, ""},
		{1016, 1500, func(p *platform.Process) { p.Exe, p.Age = "/usr/lib/dovecot/imap", 3*day }, ""},
		{1017, 0, func(p *platform.Process) { p.CPUPercent, p.Exe = 99, "/tmp/x" }, ""},
		{1018, 33, func(p *platform.Process) { p.CPUPercent, p.Age = 99, 3*day }, ""},
		{1019, 70000, func(p *platform.Process) { p.CPUPercent = 99 }, ""},
		{1020, 1500, func(p *platform.Process) {
			p.CPUPercent, p.Age, p.FDs, p.Exe = 99, 3*day, 5000, "/tmp/x"
		}, "cpu-hog long-runner fd-leak temp-exe"},
		{1021, 1500, func(p *platform.Process) { p.LockWait = 11 * time.Minute }, "lock-waiter"},
		{1022, 1500, func(p *platform.Process) { p.LockWait = 9 * time.Minute }, ""},
		{1023, 1500, func(p *platform.Process) { p.LockBlocking, p.LockBlockingFor, p.CPUPercent = 2, 6*time.Minute, 0 }, "lock-holder"},
		{1024, 1500, func(p *platform.Process) { p.LockBlocking, p.LockBlockingFor, p.CPUPercent = 2, 6*time.Minute, 30 }, ""}, // busy: working through it
		// A holder of another uid's file, or of a lock other uids wait on:
		// the offender, busy or not.
		{1025, 1500, func(p *platform.Process) {
			p.LockBlocking, p.LockBlockingFor, p.LockForeign, p.LockForeignFor, p.CPUPercent = 1, 2*time.Minute, 1, 2*time.Minute, 30
		}, "lock-squatter"},
		{1026, 1500, func(p *platform.Process) {
			p.LockBlocking, p.LockBlockingFor, p.LockForeign, p.LockForeignFor = 1, 50*time.Second, 1, 50*time.Second
		}, ""},
		{1027, 1500, func(p *platform.Process) {
			p.LockBlocking, p.LockBlockingFor, p.LockBlockingOthers, p.LockBlockingOthersFor, p.CPUPercent = 1, 6*time.Minute, 1, 6*time.Minute, 0
		}, "lock-squatter lock-holder"},
		{1028, 1500, func(p *platform.Process) {
			p.LockBlockingOthers, p.LockBlockingOthersFor, p.LockBlocking, p.LockBlockingFor = 1, 4*time.Minute, 1, 4*time.Minute
		}, ""},
	}
	snap := &platform.Snapshot{Users: users, Host: host}
	want := map[int32]string{}
	for _, tc := range tests {
		pr := fakeProc()
		pr.PID, pr.UID, pr.EUID, pr.User = tc.pid, tc.uid, tc.uid, users[tc.uid].Name
		pr.CPUPercent, pr.Age, pr.FDs, pr.Exe, pr.ExeDeleted, pr.State = 10, time.Hour, 12, "/usr/bin/php", false, 'S'
		pr.LocksHeld, pr.LockWait, pr.LockBlocking, pr.LockBlockingFor = 0, 0, 0, 0
		pr.LockBlockingOthers, pr.LockBlockingOthersFor, pr.LockForeign, pr.LockForeignFor = 0, 0, 0, 0
		tc.mutate(pr)
		snap.Procs = append(snap.Procs, pr)
		users[tc.uid].Procs++
		if tc.want != "" {
			want[tc.pid] = tc.want
		}
	}
	got := map[int32][]string{}
	NewEvaluator(p, nil).Evaluate(snap, func(m *Match) {
		got[m.Proc.PID] = append(got[m.Proc.PID], m.Rule.Name)
	})
	gotS := map[int32]string{}
	for pid, rs := range got {
		gotS[pid] = strings.Join(rs, " ")
	}
	if !reflect.DeepEqual(gotS, want) {
		var pids []int
		for pid := range want {
			pids = append(pids, int(pid))
		}
		for pid := range gotS {
			if _, ok := want[pid]; !ok {
				pids = append(pids, int(pid))
			}
		}
		sort.Ints(pids)
		for _, pid := range pids {
			if gotS[int32(pid)] != want[int32(pid)] {
				t.Errorf("pid %d: got %q, want %q", pid, gotS[int32(pid)], want[int32(pid)])
			}
		}
	}
}
