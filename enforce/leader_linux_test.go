package enforce_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
)

// TestLeaderExitedIsActedOn: a process whose main thread called
// pthread_exit shows a zombie leader, but lives on in its other thread; it
// is reniced and killed through its pidfd. Control: a true zombie is
// skipped (only its parent can reap it).
func TestLeaderExitedIsActedOn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs its targets as a throwaway user")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	dir := filepath.Dir(helperBinary(t)) // 0755, under /tmp: the user can run from it
	bin := filepath.Join(dir, "pthread_exit")
	if out, err := exec.Command(cc, "-O", "-o", bin, "../tests/testdata/pthread_exit.c", "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	cred := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}, Setpgid: true, Pdeathsig: syscall.SIGKILL}

	cmd := exec.Command(bin, "sleep")
	cmd.SysProcAttr = cred
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		if !strings.HasPrefix(line, "ready ") {
			t.Errorf("pthread_exit said %q", line)
		}
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	var p *platform.Process
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err = platform.ReadProcess(int32(cmd.Process.Pid), nil)
		if err == nil && p.LeaderExited {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader of %d not seen exited: %+v %v", cmd.Process.Pid, p, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e := enforce.New(1000, nil, nil)
	if r := e.Do(enforce.Action{Kind: enforce.ActRenice, Target: p.ProcID, Nice: 19}); r.Outcome != enforce.Done {
		t.Errorf("renice: %s %s, want done", r.Outcome, r.Reason)
	}
	if r := e.Do(enforce.Action{Kind: enforce.ActKill, Target: p.ProcID, Signal: "KILL"}); r.Outcome != enforce.Done {
		t.Errorf("kill: %s %s, want done", r.Outcome, r.Reason)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the process survived SIGKILL through its pidfd")
	}

	// The control: exited, not reaped by its parent (this test) yet.
	z := exec.Command(bin, "nonsense") // usage error: exits at once
	z.SysProcAttr = cred
	if err := z.Start(); err != nil {
		t.Fatal(err)
	}
	defer z.Wait()
	for {
		zp, err := platform.ReadProcess(int32(z.Process.Pid), nil)
		if err == nil && zp.State == 'Z' {
			if zp.LeaderExited {
				t.Fatalf("a true zombie taken for an exited leader: %+v", zp)
			}
			if r := e.Do(enforce.Action{Kind: enforce.ActKill, Target: zp.ProcID, Signal: "KILL"}); r.Outcome != enforce.Skipped || !strings.Contains(r.Reason, "zombie") {
				t.Errorf("kill of a zombie: %s %s, want skipped (zombie)", r.Outcome, r.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the control never became a zombie: %+v %v", zp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
