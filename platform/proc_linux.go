package platform

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ReadProcess reads one process afresh, for the re-check right before an
// action and for `guardd explain`. CPUPercent is left 0 (a rate needs two
// samples) and FDs is counted. It returns ErrGone when the process does not
// exist. It is on the path of every action (BenchmarkReadProcess), so it
// reads with openat on a kept /proc descriptor, one read and a close per
// file, not os.ReadFile's extra fstat and poller registration.
//
// A process whose leader exited (pthread_exit) is read from a live thread;
// one whose executable the inspector watches (SetExeInspector) gets its
// mapped files, loader environment and parent read too, the parent's own
// parent as far as the parent is inspected and not root.
func ReadProcess(pid int32, acc *Accounts) (*Process, error) {
	proc, err := procDir()
	if err != nil {
		return nil, err
	}
	return readProcess(proc, pid, acc, 0)
}

// maxParentReads bounds the ancestors ReadProcess reads along with an
// inspected process.
const maxParentReads = 8

func readProcess(proc int, pid int32, acc *Accounts, depth int) (*Process, error) {
	dir := strconv.Itoa(int(pid))
	buf := make([]byte, 4096) // one buffer per call: callers run concurrently
	n, err := readProcAt(proc, dir+"/stat", buf)
	if err != nil {
		return nil, goneOr(err, "read stat")
	}
	var st Stat
	if err := ParseStat(buf[:n], &st); err != nil {
		return nil, err
	}
	comm := string(st.Comm) // st.Comm points into buf, which is read into next
	state, exited := st.State, false
	if leaderExited(&st) {
		// The leader's stat sums every thread's CPU; the rest is a live
		// thread's.
		if tid := liveThread(proc, pid, buf); tid != 0 {
			var tst Stat
			if m, err := readProcAt(proc, taskDir(pid, tid)+"/stat", buf); err == nil && ParseStat(buf[:m], &tst) == nil && tst.State != 'Z' && tst.State != 'X' {
				dir, state, exited = taskDir(pid, tid), tst.State, true
			}
		}
	}
	n, err = readProcAt(proc, dir+"/status", buf)
	if err != nil {
		return nil, goneOr(err, "read status")
	}
	ids, err := ParseStatusIDs(buf[:n])
	if err != nil {
		return nil, err
	}
	boot, err := bootTime()
	if err != nil {
		return nil, err
	}
	p := &Process{
		ProcID:  ProcID{PID: st.PID, StartTime: st.StartTime},
		PPID:    st.PPID,
		UID:     ids.UID,
		EUID:    ids.EUID,
		GID:     ids.GID,
		State:   state,
		Comm:    comm,
		CPUTime: time.Duration(st.UTime+st.STime) * (time.Second / clockTicks),
		Threads: st.Threads,
		Nice:    st.Nice,
		Kernel:  st.Flags&PFKthread != 0,
		FDs:     -1,

		LeaderExited: exited,
	}
	p.RSSBytes = uint64(max(st.RSSPages, 0)) * uint64(os.Getpagesize())
	p.Started = boot.Add(time.Duration(st.StartTime) * (time.Second / clockTicks))
	p.Age = max(time.Since(p.Started), 0)
	if acc != nil {
		p.User = acc.Name(ids.UID)
	} else {
		p.User = strconv.FormatUint(uint64(ids.UID), 10)
	}
	if n, err := unix.Readlinkat(proc, dir+"/exe", buf); err == nil {
		p.Exe, p.ExeDeleted = ParseExeLink(string(buf[:n]))
	}
	if n, err := readProcAt(proc, dir+"/cmdline", buf); err == nil {
		p.Cmdline = ParseCmdline(buf[:n], MaxCmdline)
	}
	var sc fdScratch
	p.FDs, p.FDTables = countAllFDs(proc, pid, p.Threads, exited, buf, &sc)
	if ok, _ := inspects(p.Exe); ok && !p.Kernel {
		readLibraries(proc, dir, p, buf)
		if p.PPID > 0 && depth < maxParentReads {
			if pp, err := readProcess(proc, p.PPID, acc, depth+1); err == nil {
				if pp.Inspection == nil || pp.UID == 0 || pp.EUID == 0 {
					pp.Parent = nil // as far as the policy looks
				}
				p.Parent = pp
			}
		}
	}
	return p, nil
}

// procDir is a descriptor of /proc, opened once and kept.
var procDir = sync.OnceValues(func() (int, error) {
	fd, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /proc: %w", err)
	}
	return fd, nil
})

// readProcAt reads up to len(buf) bytes of /proc/NAME (one read: enough for
// the stat, status and cmdline prefixes guardd needs).
func readProcAt(proc int, name string, buf []byte) (int, error) {
	fd, err := unix.Openat(proc, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		return n, err
	}
}

func goneOr(err error, op string) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return ErrGone
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Ancestors returns the pids from pid's parent up to pid 1.
func Ancestors(pid int32) []int32 {
	var out []int32
	for i := 0; i < 1024 && pid > 1; i++ {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
		if err != nil {
			break
		}
		var st Stat
		if ParseStat(b, &st) != nil {
			break
		}
		pid = st.PPID
		if pid <= 0 {
			break
		}
		out = append(out, pid)
	}
	return out
}
