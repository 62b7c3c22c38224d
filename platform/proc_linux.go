package platform

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// ReadProcess reads one process afresh, for the re-check right before an
// action and for `guardd explain`. CPUPercent is left 0 (a rate needs two
// samples) and FDs is counted. It returns ErrGone when the process does not
// exist.
func ReadProcess(pid int32, acc *Accounts) (*Process, error) {
	dir := "/proc/" + strconv.Itoa(int(pid))
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return nil, goneOr(err, "read stat")
	}
	var st Stat
	if err := ParseStat(stat, &st); err != nil {
		return nil, err
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return nil, goneOr(err, "read status")
	}
	ids, err := ParseStatusIDs(status)
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
		State:   st.State,
		Comm:    string(st.Comm),
		CPUTime: time.Duration(st.UTime+st.STime) * (time.Second / clockTicks),
		Threads: st.Threads,
		Nice:    st.Nice,
		Kernel:  st.Flags&PFKthread != 0,
		FDs:     -1,
	}
	p.RSSBytes = uint64(max(st.RSSPages, 0)) * uint64(os.Getpagesize())
	p.Started = boot.Add(time.Duration(st.StartTime) * (time.Second / clockTicks))
	p.Age = max(time.Since(p.Started), 0)
	if acc != nil {
		p.User = acc.Name(ids.UID)
	} else {
		p.User = strconv.FormatUint(uint64(ids.UID), 10)
	}
	if link, err := os.Readlink(dir + "/exe"); err == nil {
		p.Exe, p.ExeDeleted = ParseExeLink(link)
	}
	if b, err := os.ReadFile(dir + "/cmdline"); err == nil {
		p.Cmdline = ParseCmdline(b, MaxCmdline)
	}
	var fst unix.Stat_t
	if unix.Stat(dir+"/fd", &fst) == nil && fst.Size > 0 {
		p.FDs = int32(min(fst.Size, 1<<31-1))
	}
	return p, nil
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
