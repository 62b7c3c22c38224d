package platform

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unusedUID finds a uid that no account and no process has, for processes
// this test alone runs.
func unusedUID(t *testing.T) uint32 {
	t.Helper()
	passwd, _ := os.ReadFile("/etc/passwd")
	for uid := uint32(59990); uid > 59000; uid-- {
		if strings.Contains(string(passwd), ":"+strconv.FormatUint(uint64(uid), 10)+":") {
			continue
		}
		return uid
	}
	t.Skip("no unused uid")
	return 0
}

// TestConnectorEventsLostRecover: with a receive buffer far too small for
// a burst, the kernel drops events and Read says so; a Sync from a sample
// restores the counts, and events keep them right afterwards.
func TestConnectorEventsLostRecover(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the proc connector needs root")
	}
	c, err := OpenConnector(4096)
	if err != nil {
		t.Skipf("proc connector: %v", err)
	}
	defer c.Close()
	uid := unusedUID(t)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}, Pdeathsig: syscall.SIGKILL}}
	var pids []int
	defer func() {
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(p, &ws, 0, nil)
		}
	}()
	// The burst, while nobody reads: far more than 4 KiB of events.
	for range 200 {
		p, err := syscall.ForkExec(sleep, []string{"sleep", "600"}, attr)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p)
	}
	tr := NewTracker()
	resolve := func(pid int32) (uint32, bool) { return 0, true }
	lost := make(chan struct{}, 1)
	go func() {
		for {
			err := c.Read(func(ev ProcEvent) { tr.Handle(ev, time.Now(), resolve) })
			switch {
			case errors.Is(err, ErrEventsLost):
				tr.Lost()
				select {
				case lost <- struct{}{}:
				default:
				}
			case err != nil:
				return
			}
		}
	}()
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("no ErrEventsLost after a burst of 200 processes into a 4 KiB buffer")
	}

	s := newSampler(t, nil)
	snap := sample(t, s)
	tr.Sync(snap)
	if got := tr.Live(uid); got != 200 {
		t.Fatalf("after Sync the tracker counts %d live processes of uid %d, want 200", got, uid)
	}
	// Events keep the count right after the resync. The tiny buffer may
	// overflow again with the host's own events (every exec is one): each
	// loss is followed by a resync, as guardd does at its next tick.
	lostBefore := tr.LostCount()
	for _, p := range pids[:50] {
		syscall.Kill(p, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(p, &ws, 0, nil)
	}
	pids = pids[50:]
	deadline := time.Now().Add(10 * time.Second)
	for tr.Live(uid) != 150 {
		if n := tr.LostCount(); n != lostBefore {
			lostBefore = n
			tr.Sync(sample(t, s))
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("tracker counts %d live processes after 50 exits, want 150 (lost %d times)", tr.Live(uid), tr.LostCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
