//go:build freebsd

package platform

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
	"unique"

	"golang.org/x/sys/unix"
)

// staticRecheck is how often a process's executable and command line are
// re-read when neither its comm nor its uid changed: a process can
// setproctitle(3) at any time.
const staticRecheck = 30 * time.Second

// Sampler reads every process on each call to Sample: one kern.proc.proc
// sysctl copies the whole table (one struct kinfo_proc per process) into a
// buffer the sampler reuses, so a tick costs one system call plus one per
// process that is new or exec'd (its path and arguments), whatever the
// number of processes. Unlike on Linux, idle processes are not skipped:
// the table comes whole either way.
//
// A Sampler is not safe for concurrent use.
type Sampler struct {
	// FDInterval is how often each process's open descriptors are counted
	// (kern.proc.filedesc, spread over the interval); 0 means 10s.
	FDInterval time.Duration
	Accounts   *Accounts

	entries  map[int32]*bsdEntry
	gen      uint64
	buf      []byte // kern.proc.proc
	small    []byte // everything else
	last     time.Time
	hostname string
	ncpu     int
	pageSize uint64
	snap     Snapshot
	users    map[uint32]*UserStats
	closed   bool
	notes    execNotes
	execd    map[int32]bool // exec events taken from notes for this sample
}

type bsdEntry struct {
	p        Process
	gen      uint64
	runtime  uint64    // ki_runtime at the last read, microseconds
	readAt   time.Time // when
	staticAt time.Time // next re-read of exe and command line
	fdsAt    time.Time // next descriptor count
	// CPU time at the last static re-read and descriptor count: a process
	// that has not run since cannot have changed either.
	staticRuntime, fdsRuntime uint64
}

// NewSampler checks that the kernel's struct kinfo_proc has a layout
// guardd knows (reading its own record) and prepares a sampler.
func NewSampler(acc *Accounts) (*Sampler, error) {
	if acc == nil {
		acc = NewAccounts()
	}
	s := &Sampler{
		Accounts: acc,
		entries:  make(map[int32]*bsdEntry),
		buf:      make([]byte, 256*KinfoProcSize),
		small:    make([]byte, 8192),
		pageSize: uint64(os.Getpagesize()),
		users:    make(map[uint32]*UserStats),
	}
	b, err := sysctlRead(procMIB(kernProcPID, int32(os.Getpid())), &s.small)
	if err != nil {
		return nil, fmt.Errorf("sysctl kern.proc.pid: %w", err)
	}
	if err := ParseKinfoProcs(b, func(*KinfoProc) {}); err != nil {
		return nil, fmt.Errorf("this kernel's process table: %w", err)
	}
	s.hostname, _ = os.Hostname()
	s.ncpu = 1
	if n, err := sysctlInt("hw.ncpu"); err == nil && n > 0 {
		s.ncpu = int(n)
	}
	return s, nil
}

// Close releases the sampler.
func (s *Sampler) Close() error {
	s.closed = true
	clear(s.entries)
	return nil
}

// readTable reads the process table with the boot time it is relative
// to. A wall-clock step moves kern.boottime and every ki_start together;
// the table is read again if one happened in between, so that no start
// time is computed against the wrong boot time.
func (s *Sampler) readTable() ([]byte, int64, error) {
	mib := []int32{ctlKern, kernProc, kernProcProc}
	for try := 0; ; try++ {
		boot, err := bootMicros(&s.small)
		if err != nil {
			return nil, 0, err
		}
		b, err := sysctlRead(mib, &s.buf)
		if err != nil {
			return nil, 0, fmt.Errorf("sysctl kern.proc.proc: %w", err)
		}
		again, err := bootMicros(&s.small)
		if err != nil {
			return nil, 0, err
		}
		if again == boot || try == 2 {
			return b, boot, nil
		}
	}
}

// Sample reads every process and the host facts. The returned snapshot is
// valid until the next call.
func (s *Sampler) Sample() (*Snapshot, error) {
	if s.closed {
		return nil, errors.New("sampler closed")
	}
	now := time.Now()
	var interval time.Duration
	if !s.last.IsZero() {
		interval = now.Sub(s.last)
	}
	if err := s.Accounts.Refresh(); err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	table, boot, err := s.readTable()
	if err != nil {
		return nil, err
	}
	s.last = now
	s.gen++
	s.execd = s.notes.take(s.execd)
	fdEvery := s.FDInterval
	if fdEvery <= 0 {
		fdEvery = 10 * time.Second
	}
	procs := s.snap.Procs[:0]
	kernel := 0
	err = ParseKinfoProcs(table, func(k *KinfoProc) {
		if k.Kernel() {
			kernel++
			return
		}
		start := k.StartSinceBoot(boot)
		e := s.entries[k.PID]
		if e != nil && e.p.StartTime != start {
			delete(s.entries, k.PID) // the pid names a new process
			e = nil
		}
		if e == nil {
			e = &bsdEntry{}
			e.p.PID, e.p.StartTime, e.p.FDs = k.PID, start, -1
			s.apply(e, k, now, boot)
			// Born since the previous sample: everything it used is new.
			if interval > 0 && e.p.Age < interval {
				e.p.CPUPercent = cpuPercentMicros(e.runtime, max(e.p.Age, time.Millisecond))
			}
			s.readStatic(e)
			e.staticRuntime = e.runtime
			e.staticAt = now.Add(spread(k.PID, staticRecheck))
			e.fdsAt = now
			s.entries[k.PID] = e
		} else {
			oldComm, oldUID, oldRuntime, lastRead := e.p.Comm, e.p.UID, e.runtime, e.readAt
			s.apply(e, k, now, boot)
			e.p.CPUPercent = cpuPercentMicros(e.runtime-min(oldRuntime, e.runtime), now.Sub(lastRead))
			switch {
			case e.p.Comm != oldComm || e.p.UID != oldUID || s.execd[k.PID]: // exec or setuid
				s.readStatic(e)
				e.staticRuntime = e.runtime
			case !now.Before(e.staticAt):
				if e.runtime != e.staticRuntime {
					s.readStatic(e)
					e.staticRuntime = e.runtime
				}
				e.staticAt = now.Add(staticRecheck)
			}
		}
		e.gen = s.gen
		if !now.Before(e.fdsAt) {
			if e.p.FDs < 0 || e.runtime != e.fdsRuntime {
				e.p.FDs = s.countFDs(k.PID)
				e.fdsRuntime = e.runtime
			}
			e.fdsAt = now.Add(fdEvery)
		}
		procs = append(procs, &e.p)
	})
	if err != nil {
		return nil, fmt.Errorf("sysctl kern.proc.proc: %w", err)
	}
	for pid, e := range s.entries {
		if e.gen != s.gen {
			delete(s.entries, pid)
		}
	}
	clear(procs[len(procs):cap(procs)])
	s.snap.Procs = procs
	s.snap.Time = now
	s.snap.Interval = interval
	s.aggregateUsers()
	s.snap.Users = s.users
	s.snap.Host = s.host(len(procs) + kernel)
	return &s.snap, nil
}

// apply copies what changes from tick to tick.
func (s *Sampler) apply(e *bsdEntry, k *KinfoProc, now time.Time, boot int64) {
	p := &e.p
	p.PPID = k.PPID
	p.State = k.State()
	if string(k.Comm) != p.Comm {
		p.Comm = unique.Make(string(k.Comm)).Value()
	}
	switch {
	case k.Stat != bsdSSLEEP:
		p.WaitChannel = ""
	case string(k.Wmesg) != p.WaitChannel:
		p.WaitChannel = unique.Make(string(k.Wmesg)).Value()
	}
	if p.UID != k.RUID || p.User == "" {
		p.User = unique.Make(s.Accounts.Name(k.RUID)).Value()
	}
	p.UID, p.EUID, p.GID = k.RUID, k.UID, k.RGID
	p.Nice = int32(k.Nice)
	p.Threads = k.Threads
	p.RSSBytes = uint64(k.RSSPages) * s.pageSize
	e.runtime = k.RuntimeMicros
	e.readAt = now
	p.CPUTime = k.CPUTime()
	p.Started = time.UnixMicro(boot + int64(p.StartTime))
	p.Age = max(now.Sub(p.Started), 0)
}

func cpuPercentMicros(micros uint64, over time.Duration) float64 {
	if over <= 0 {
		return 0
	}
	return float64(micros) / float64(over.Microseconds()) * 100
}

// readStatic reads the executable's path and the command line.
func (s *Sampler) readStatic(e *bsdEntry) {
	p := &e.p
	p.Exe, p.ExeDeleted = "", false
	if exe, err := readPathname(p.PID, &s.small); err == nil {
		p.Exe = unique.Make(exe).Value()
	}
	if b, err := sysctlRead(procMIB(kernProcArgs, p.PID), &s.small); err == nil {
		p.Cmdline = unique.Make(ParseCmdline(b, MaxCmdline)).Value()
	}
}

// readPathname reads kern.proc.pathname.PID: the path the kernel finds
// for the process's executable (vn_fullpath). It fails for some
// processes whose file was deleted, or whose name the kernel's name cache
// lost; FreeBSD does not say which, so ExeDeleted stays false there and
// Exe empty.
func readPathname(pid int32, buf *[]byte) (string, error) {
	b, err := sysctlRead(procMIB(kernProcPathname, pid), buf)
	if err != nil {
		return "", err
	}
	path, _ := cString(b)
	if len(path) == 0 || path[0] != '/' {
		return "", errors.New("no path")
	}
	return string(path), nil
}

// countFDs counts pid's open descriptors from kern.proc.filedesc; -1 when
// unreadable.
func (s *Sampler) countFDs(pid int32) int32 {
	return countFDs(pid, &s.small)
}

func countFDs(pid int32, buf *[]byte) int32 {
	b, err := sysctlRead(procMIB(kernProcFiledesc, pid), buf)
	if err != nil {
		return -1
	}
	n, err := CountKinfoFiles(b)
	if err != nil {
		return -1
	}
	return int32(min(n, 1<<31-1))
}

func (s *Sampler) aggregateUsers() {
	aggregateUsers(s.users, s.snap.Procs, func(ppid int32) *Process {
		if e := s.entries[ppid]; e != nil && e.gen == s.gen {
			return &e.p
		}
		return nil
	}, s.Accounts)
}

func (s *Sampler) host(procs int) Host {
	h := Host{Hostname: s.hostname, NCPU: s.ncpu, Procs: procs}
	if b, err := sysctlByName("vm.loadavg", &s.small); err == nil {
		if l, err := ParseBSDLoadavg(b); err == nil {
			h.Load1, h.Load5, h.Load15 = l.Load1, l.Load5, l.Load15
		}
	}
	open, err1 := sysctlInt("kern.openfiles")
	limit, err2 := sysctlInt("kern.maxfiles")
	if err1 == nil && err2 == nil && open >= 0 && limit > 0 {
		h.FilesOpen, h.FilesMax = uint64(open), uint64(limit)
		h.FilesOpenPercent = float64(open) / float64(limit) * 100
	}
	return h
}

// Alive reports whether the process id was alive at the last sample.
func (s *Sampler) Alive(id ProcID) bool {
	e := s.entries[id.PID]
	return e != nil && e.p.StartTime == id.StartTime
}

// ReadProcess reads one process afresh (kern.proc.pid), for the re-check
// right before an action and for `guardd explain`. CPUPercent is left 0
// and FDs is counted. It returns ErrGone when the process does not exist.
func ReadProcess(pid int32, acc *Accounts) (*Process, error) {
	var buf []byte
	k, boot, err := readKinfo(pid, &buf)
	if err != nil {
		return nil, err
	}
	p := &Process{
		ProcID:  ProcID{PID: k.PID, StartTime: k.StartSinceBoot(boot)},
		PPID:    k.PPID,
		UID:     k.RUID,
		EUID:    k.UID,
		GID:     k.RGID,
		State:   k.State(),
		Comm:    string(k.Comm),
		CPUTime: k.CPUTime(),
		Threads: k.Threads,
		Nice:    int32(k.Nice),
		Kernel:  k.Kernel(),
	}
	if k.Stat == bsdSSLEEP {
		p.WaitChannel = string(k.Wmesg)
	}
	p.RSSBytes = uint64(k.RSSPages) * uint64(os.Getpagesize())
	p.Started = time.UnixMicro(boot + int64(p.StartTime))
	p.Age = max(time.Since(p.Started), 0)
	if acc != nil {
		p.User = acc.Name(k.RUID)
	} else {
		p.User = strconv.FormatUint(uint64(k.RUID), 10)
	}
	if !p.Kernel {
		p.Exe, _ = readPathname(pid, &buf)
		if b, err := sysctlRead(procMIB(kernProcArgs, pid), &buf); err == nil {
			p.Cmdline = ParseCmdline(b, MaxCmdline)
		}
	}
	p.FDs = countFDs(pid, &buf)
	return p, nil
}

// readKinfo reads one process's struct kinfo_proc (copied out of buf)
// and the boot time its start is relative to.
func readKinfo(pid int32, buf *[]byte) (KinfoProc, int64, error) {
	if pid <= 0 {
		return KinfoProc{}, 0, ErrGone // kern.proc.pid.0 is the kernel; negative pids name nothing
	}
	boot, err := bootMicros(buf)
	if err != nil {
		return KinfoProc{}, 0, err
	}
	b, err := sysctlRead(procMIB(kernProcPID, pid), buf)
	if errors.Is(err, unix.ESRCH) {
		return KinfoProc{}, 0, ErrGone
	}
	if err != nil {
		return KinfoProc{}, 0, fmt.Errorf("sysctl kern.proc.pid.%d: %w", pid, err)
	}
	var out KinfoProc
	found := false
	err = ParseKinfoProcs(b, func(k *KinfoProc) {
		if k.PID == pid && !found {
			out, found = *k, true
			out.Comm = append([]byte(nil), k.Comm...)
			out.Wmesg = append([]byte(nil), k.Wmesg...)
		}
	})
	if err != nil {
		return KinfoProc{}, 0, err
	}
	if !found {
		return KinfoProc{}, 0, ErrGone
	}
	return out, boot, nil
}

// Ancestors returns the pids from pid's parent up to pid 1.
func Ancestors(pid int32) []int32 {
	var out []int32
	var buf []byte
	for i := 0; i < 1024 && pid > 1; i++ {
		k, _, err := readKinfo(pid, &buf)
		if err != nil || k.PPID <= 0 {
			break
		}
		pid = k.PPID
		out = append(out, pid)
	}
	return out
}

// BootID identifies the current boot by kern.boottime. A step of the wall
// clock moves kern.boottime too, so it changes the id: escalations kept
// in state_dir then start over, which errs on the side of acting later.
func BootID() (string, error) {
	var buf []byte
	us, err := bootMicros(&buf)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("boottime-%d.%06d", us/1e6, us%1e6), nil
}

// NoteExec tells the sampler that pid called execve (a kqueue
// NOTE_EXEC): the next sample re-reads its path and arguments even if
// its comm stayed the same. It is safe to call from another goroutine.
func (s *Sampler) NoteExec(pid int32) { s.notes.note(pid) }

// SetActivityProbe: FreeBSD reads every process in one sysctl; a probe
// would save nothing.
func (s *Sampler) SetActivityProbe(ActivityProbe) {}

// ProbeSkips: none.
func (s *Sampler) ProbeSkips() uint64 { return 0 }
