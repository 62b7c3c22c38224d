package main

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/capability/storms"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// eventRecorder is a capability that hands every journalled event to a
// channel.
type eventRecorder struct {
	capability.Base
	events chan report.Event
}

func (r *eventRecorder) Name() string { return "test recorder" }
func (r *eventRecorder) Event(ev *report.Event) {
	select {
	case r.events <- *ev:
	default:
	}
}

// Reloads during a reap's grace: the follow-up at the end of the grace
// re-checks protection from the enforcer's timer while the loop installs
// new policies. Run with -race: the check must use the policy it was
// scheduled with, not read d.pol as a reload writes it. The control: the
// follow-up does end the parent of the zombie.
func TestReloadDuringReapGrace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the zombie's parent runs as nobody")
	}
	const nobody = 65534
	src := map[string][]byte{"p.hcl": []byte(`
class "c" { uids = ["65534"] }
rule "zombies" {
  class = "c"
  when  = user.zombies > 0
  reap { grace = "200ms" }
}`)}
	pol, diags := policy.Parse(src)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	// sh forks a child that exits at once, then becomes sleep, which never
	// waits: the child stays a zombie of it.
	cmd := exec.Command("/bin/sh", "-c", "/bin/true & exec /bin/sleep 60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its own group: only what this test started
		cmd.Wait()
	})
	acc := platform.NewAccounts()
	var parent *platform.Process
	for end := time.Now().Add(30 * time.Second); ; {
		p, err := platform.ReadProcess(int32(cmd.Process.Pid), acc)
		if err == nil && p.Comm == "sleep" {
			if zombieCount(p.PID) > 0 {
				parent = p
				break
			}
		}
		if time.Now().After(end) {
			t.Fatal("no zombie appeared under the test's sleep")
		}
		time.Sleep(10 * time.Millisecond) // polling /proc: there is no event for "became a zombie"
	}

	sampler, err := platform.NewSampler(acc)
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close()
	audit, err := report.OpenAuditLog(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	rec := &eventRecorder{events: make(chan report.Event, 16)}
	d := &daemonState{log: slog.New(slog.NewTextHandler(io.Discard, nil)), accounts: acc, sampler: sampler,
		ledger: enforce.NewLedger(), caps: []capability.Capability{rec}}
	d.audit.Store(audit)
	d.enf = enforce.New(pol.MinUID, acc, d.followUp)
	defer d.enf.Close()
	d.install(pol)

	m := &policy.Match{Rule: pol.Rules[0], Proc: parent, User: &platform.UserStats{UID: nobody}}
	d.decideMu.Lock()
	reap := storms.NewUserSteps().(capability.Stepper).Steps()[storms.StepReap]
	reap(d, &platform.Snapshot{Time: time.Now(), Procs: []*platform.Process{parent}}, m, pol.Rules[0].Steps[0], report.Event{Rule: "zombies", Action: "reap"})
	d.decideMu.Unlock()

	// Reload over and over until the follow-up comes.
	deadline := time.After(30 * time.Second)
	for reloads := 0; ; reloads++ {
		select {
		case ev := <-rec.events:
			if ev.Signal != "TERM" {
				continue // the SIGCHLD line itself
			}
			if ev.Outcome != report.OutcomeDone {
				t.Fatalf("control: the follow-up did not end the zombie's parent: %s (%s)", ev.Outcome, ev.Reason)
			}
			if reloads == 0 {
				t.Fatal("no reload happened during the grace")
			}
			return
		case <-deadline:
			t.Fatal("no follow-up at the end of the reap's grace")
		default:
		}
		p, diags := policy.Parse(src)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		d.decideMu.Lock() // as reload does
		d.install(p)
		d.decideMu.Unlock()
	}
}

// zombieCount counts the zombie children of pid.
func zombieCount(pid int32) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		var st platform.Stat
		if platform.ParseStat(b, &st) == nil && st.PPID == pid && st.State == 'Z' {
			n++
		}
	}
	return n
}
