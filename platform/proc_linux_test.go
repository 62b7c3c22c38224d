package platform

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReadProcess(t *testing.T) {
	c := startHelper(t, "fds", "x y")
	p, err := ReadProcess(c.pid, hostileAccounts(t))
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	if p.PID != c.pid || p.PPID != int32(os.Getpid()) || p.UID != uint32(os.Getuid()) || p.Kernel ||
		p.Exe != exe || p.Cmdline != cmdlineOf(c.args) || (p.State != 'S' && p.State != 'R') {
		t.Errorf("ReadProcess = %s", dumpProc(p))
	}
	// Names come from the given accounts (uid 0 is "root" in the fixture).
	if os.Getuid() == 0 && p.User != "root" {
		t.Errorf("User = %q, want root", p.User)
	}
	if p.FDs < helperExtraFDs+3 {
		t.Errorf("FDs = %d, want >= %d", p.FDs, helperExtraFDs+3)
	}
	if p.CPUPercent != 0 || p.RSSBytes == 0 || p.Threads < 1 || p.Age <= 0 {
		t.Errorf("CPUPercent %v RSS %d threads %d age %v", p.CPUPercent, p.RSSBytes, p.Threads, p.Age)
	}

	// The sampler and ReadProcess agree on identity and static facts.
	s := newSampler(t, hostileAccounts(t))
	sample(t, s) // the command line is read from the second sight on
	q := mustFind(t, sample(t, s), c.pid)
	if q.ProcID != p.ProcID || q.Comm != p.Comm || q.Exe != p.Exe || q.Cmdline != p.Cmdline || q.User != p.User ||
		q.FDs != p.FDs || q.Started.Sub(p.Started).Abs() > 1e6 {
		t.Errorf("sampler     %s\nReadProcess %s", dumpProc(q), dumpProc(p))
	}
	if !s.Alive(p.ProcID) {
		t.Errorf("Alive(%v) = false for a live process", p.ProcID)
	}
	if s.Alive(ProcID{PID: p.PID, StartTime: p.StartTime + 1}) {
		t.Error("Alive is true for another process at the same pid")
	}

	// Gone: ErrGone, not another error.
	c.stdin.Close()
	c.cmd.Wait()
	if _, err := ReadProcess(c.pid, nil); !errors.Is(err, ErrGone) {
		t.Errorf("ReadProcess of a reaped process: %v, want ErrGone", err)
	}
	sample(t, s)
	if s.Alive(p.ProcID) {
		t.Error("Alive is true after the process was reaped")
	}
}

func TestReadProcessHostileComm(t *testing.T) {
	c := startHelper(t, "comm")
	p, err := ReadProcess(c.pid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Comm != helperComm || p.PPID != int32(os.Getpid()) {
		t.Errorf("Comm %q PPID %d", p.Comm, p.PPID)
	}
}

func TestReadProcessKernelThread(t *testing.T) {
	b, err := os.ReadFile("/proc/2/stat")
	if err != nil || !strings.HasPrefix(string(b), "2 (kthreadd)") {
		t.Skip("kthreadd is not visible in this pid namespace")
	}
	p, err := ReadProcess(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Kernel || p.Exe != "" || p.Cmdline != "" || p.Comm != "kthreadd" || p.UID != 0 {
		t.Errorf("kthreadd: %s", dumpProc(p))
	}
}

func TestAncestors(t *testing.T) {
	c := startHelper(t, "idle")
	got := Ancestors(c.pid)
	if len(got) < 2 || got[0] != int32(os.Getpid()) || got[1] != int32(os.Getppid()) {
		t.Fatalf("Ancestors(child) = %v, want [%d %d ...]", got, os.Getpid(), os.Getppid())
	}
	if slices.Contains(got, 0) || slices.Contains(got, c.pid) {
		t.Errorf("Ancestors(child) = %v", got)
	}
	// Each ancestor's parent is the next one.
	for i := 0; i+1 < len(got); i++ {
		p, err := ReadProcess(got[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.PPID != got[i+1] {
			t.Errorf("parent of %d is %d, Ancestors says %d", got[i], p.PPID, got[i+1])
		}
	}
	if a := Ancestors(1); len(a) != 0 {
		t.Errorf("Ancestors(1) = %v", a)
	}
	c.stdin.Close()
	c.cmd.Wait()
	if a := Ancestors(c.pid); len(a) != 0 {
		t.Errorf("Ancestors of a reaped process = %v", a)
	}
}

func TestBootID(t *testing.T) {
	a, err := BootID()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := BootID()
	if len(a) != 36 || strings.Count(a, "-") != 4 || a != b {
		t.Errorf("BootID = %q then %q, want one stable UUID", a, b)
	}
}

// dumpProc formats every field: Process embeds ProcID, whose String method
// would make %v print only "pid@start".
func dumpProc(p *Process) string {
	// Not %+v of the struct: the embedded ProcID's String method would
	// print only pid@starttime.
	return fmt.Sprintf("%v ppid=%d uid=%d user=%q state=%c comm=%q exe=%q cmdline=%q fds=%d threads=%d rss=%d started=%s age=%s cpu%%=%.1f",
		p.ProcID, p.PPID, p.UID, p.User, p.State, p.Comm, p.Exe, p.Cmdline, p.FDs, p.Threads, p.RSSBytes,
		p.Started.Format(time.RFC3339Nano), p.Age, p.CPUPercent)
}
