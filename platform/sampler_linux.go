package platform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
	"unique"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times. It is 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK) returns the
// same constant), so it is not looked up at run time.
const clockTicks = 100

// staticRecheck is how often a process's uid is re-read when nothing else
// says it changed: setuid() without exec (php-fpm workers) keeps the comm.
// Rechecks are spread over the period so they never come all at once.
const staticRecheck = 30 * time.Second

// maxIdleSkip bounds how many ticks an idle process goes unread. A process
// that did not run since its last read (no CPU time, not runnable) is read
// every 2nd, 4th, then 8th tick; one that runs is read every tick. Reading
// /proc/PID/stat is most of a tick's cost, and on a hosting server most
// processes sleep; a process that wakes up is seen within 8 ticks, far
// within any sensible `for`.
const maxIdleSkip = 8

// Sampler reads every process on each call to Sample. It keeps
// /proc/PID/stat open for each live process and re-reads it with pread: an
// open descriptor stays bound to its process (a read after the process is
// reaped fails with ESRCH, even if the pid was reused), and it saves the
// open and close of every process on every tick.
//
// A Sampler is not safe for concurrent use.
type Sampler struct {
	// FDInterval is how often each process's open descriptors are counted;
	// 0 means 10s. Counting is a stat of /proc/PID/fd (its size is the
	// descriptor count since Linux 6.2), spread over the interval.
	FDInterval time.Duration
	Accounts   *Accounts

	procFD   int
	entries  map[int32]*entry
	gen      uint64
	buf      []byte
	stat     Stat // scratch, so parsing allocates nothing
	dirBuf   []byte
	taskBuf  []byte // for task and fd directories, read while dirBuf lists /proc
	fdsc     fdScratch
	execd    map[int32]bool // exec events taken from notes for this sample
	notes    execNotes
	last     time.Time     // monotonic time of the previous sample
	epoch    time.Time     // what entries' times count from
	boot     time.Time     // wall-clock boot time, as last taken
	at       time.Duration // the current sample's time, from epoch
	hostname string
	ncpu     int
	pageSize uint64
	snap     Snapshot
	users    map[uint32]*UserStats
	closed   bool
	kept     int // stat descriptors held open
	keepMax  int // hold at most this many, leaving room for everything else

	probe    ActivityProbe       // nil: none
	activity map[uint32]Activity // this sample's answers, by uid
	skipped  uint64              // reads the probe saved, in all
}

// SetActivityProbe makes the sampler ask p, once per sample and uid,
// whether a uid's processes ran: processes of a uid that did not are not
// read (the idle backoff would have read some), those of a uid that did
// are read at once (the backoff would have waited up to 8 ticks for
// some). nil removes it.
func (s *Sampler) SetActivityProbe(p ActivityProbe) { s.probe = p }

// ProbeSkips is how many process reads the activity probe saved so far.
func (s *Sampler) ProbeSkips() uint64 { return s.skipped }

// activityOf asks the probe about uid, once per sample.
func (s *Sampler) activityOf(uid uint32) Activity {
	if s.probe == nil {
		return ActivityUnknown
	}
	a, ok := s.activity[uid]
	if !ok {
		a = s.probe(uid)
		s.activity[uid] = a
	}
	return a
}

// fdReserve is how many descriptors the sampler leaves to the rest of
// guardd (pidfds, the audit log, sockets) under RLIMIT_NOFILE.
const fdReserve = 1024

// entry is the sampler's record of one process; its fields are ordered
// to pack (one entry per process, up to tens of thousands).
type entry struct {
	p           Process
	statFD      int32  // -1 when the descriptor limit was reached: open per read
	idle        uint8  // ticks between reads (1 … maxIdleSkip)
	needCmdline bool   // not read yet (see readCmdline)
	execd       bool   // an exec event names it: re-read what changes at exec
	tid         int32  // a live thread to read from while the leader has exited; 0 otherwise
	inspectGen  uint32 // the inspector generation Inspection was decided under
	ino         uint64 // inode of /proc/PID when listed: a reused pid gets a new one
	gen         uint64
	ticks       uint64 // utime+stime at the last read
	nextRead    uint64 // the sampler generation of the next read
	// Times as offsets from Sampler.epoch (8 bytes where a time.Time takes
	// 24).
	readAt   time.Duration // when stat was last read
	staticAt time.Duration // next uid recheck
	fdsAt    time.Duration // next descriptor count
	// CPU ticks at the last uid recheck and descriptor count: a process
	// that has not run since cannot have changed either.
	staticTicks, fdsTicks uint64
}

// NewSampler opens /proc and prepares a sampler.
func NewSampler(acc *Accounts) (*Sampler, error) {
	fd, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /proc: %w", err)
	}
	if acc == nil {
		acc = NewAccounts()
	}
	s := &Sampler{
		Accounts: acc,
		procFD:   fd,
		entries:  make(map[int32]*entry),
		buf:      make([]byte, 4096),
		dirBuf:   make([]byte, 32<<10),
		taskBuf:  make([]byte, 8<<10),
		pageSize: uint64(os.Getpagesize()),
		users:    make(map[uint32]*UserStats),
	}
	s.hostname, _ = os.Hostname()
	s.ncpu = onlineCPUs()
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur > fdReserve {
		s.keepMax = int(min(lim.Cur-fdReserve, 1<<30))
	}
	return s, nil
}

func onlineCPUs() int {
	if b, err := os.ReadFile("/sys/devices/system/cpu/online"); err == nil {
		if n, err := ParseCPUList(b); err == nil && n > 0 {
			return n
		}
	}
	n, _ := ParseCPUList([]byte("0"))
	return n
}

// Close releases every descriptor the sampler holds.
func (s *Sampler) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	for pid, e := range s.entries {
		s.drop(pid, e)
	}
	return unix.Close(s.procFD)
}

// Sample reads every process and the host facts. The returned snapshot is
// valid until the next call.
func (s *Sampler) Sample() (*Snapshot, error) {
	if s.closed {
		return nil, errors.New("sampler closed")
	}
	now := time.Now()
	if s.epoch.IsZero() {
		s.epoch = now
	}
	s.at = now.Sub(s.epoch)
	boot, err := bootTime()
	if err != nil {
		return nil, err
	}
	// Keep the boot time steady (start times must not wobble between
	// ticks); follow it only when the wall clock was stepped.
	if !s.boot.IsZero() && boot.Sub(s.boot).Abs() < time.Second {
		boot = s.boot
	}
	s.boot = boot
	var interval time.Duration
	if !s.last.IsZero() {
		interval = now.Sub(s.last)
	}
	s.last = now
	if err := s.Accounts.Refresh(); err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	s.gen++
	fdEvery := s.FDInterval
	if fdEvery <= 0 {
		fdEvery = 10 * time.Second
	}

	procs := s.snap.Procs[:0]
	kthreads := 0
	if s.probe != nil {
		if s.activity == nil {
			s.activity = map[uint32]Activity{}
		}
		clear(s.activity)
	}
	s.execd = s.notes.take(s.execd)
	err = s.listPIDs(func(pid int32, ino uint64) {
		e := s.entries[pid]
		if e != nil && len(s.execd) > 0 && s.execd[pid] {
			e.execd, e.nextRead = true, s.gen // read it now, whatever its idleness
		}
		if e != nil && e.ino != ino {
			// A new /proc/PID inode: the pid names a new process, or the
			// kernel dropped and rebuilt the dentry. The start time tells.
			if !s.sameProcess(e) {
				s.drop(pid, e)
				e = nil
			} else {
				e.ino, e.nextRead = ino, s.gen
			}
		}
		if e != nil && s.probe != nil && !e.p.Kernel && !e.execd {
			switch s.activityOf(e.p.UID) {
			case ActivityNone:
				if s.gen >= e.nextRead {
					s.skipped++ // a read the backoff would have made
					e.nextRead = s.gen + uint64(e.idle)
				}
			case ActivitySome:
				e.nextRead = min(e.nextRead, s.gen)
			}
		}
		if e != nil {
			switch {
			case e.p.Kernel:
				// Never acted on and never changing owner: being listed
				// under the same inode is enough.
				e.gen = s.gen
				kthreads++
				return
			case s.gen < e.nextRead:
				e.p.Age = max(now.Sub(e.p.Started), 0) // idle: not read this tick
				e.gen = s.gen
			case !s.refresh(e, now, boot):
				s.drop(pid, e)
				e = nil // gone
			}
		}
		if e == nil {
			e = s.discover(pid, ino, now, boot, interval)
			if e == nil {
				return
			}
			if e.p.Kernel {
				kthreads++
				return
			}
		}
		if s.at >= e.fdsAt {
			if e.p.FDs < 0 || e.ticks != e.fdsTicks {
				e.p.FDs, e.p.FDTables = countAllFDs(s.procFD, pid, e.p.Threads, e.p.LeaderExited, s.taskBuf, &s.fdsc)
				e.fdsTicks = e.ticks
			}
			e.fdsAt = s.at + fdEvery
		}
		procs = append(procs, &e.p)
	})
	if err != nil {
		return nil, err
	}
	for pid, e := range s.entries {
		if e.gen != s.gen {
			s.drop(pid, e)
		}
	}
	clear(procs[len(procs):cap(procs)]) // let exited processes be collected
	s.snap.Procs = procs
	s.snap.Time = now
	s.snap.Interval = interval
	s.aggregateUsers()
	s.snap.Users = s.users
	s.snap.Host = s.host(len(procs) + kthreads)
	return &s.snap, nil
}

// listPIDs calls fn for each numeric entry of /proc with its inode number.
// Hand-parsed dirents: os.File.Readdirnames allocates a string per process
// per tick.
func (s *Sampler) listPIDs(fn func(pid int32, ino uint64)) error {
	if _, err := unix.Seek(s.procFD, 0, 0); err != nil {
		return fmt.Errorf("rewind /proc: %w", err)
	}
	for {
		n, err := unix.Getdents(s.procFD, s.dirBuf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read /proc: %w", err)
		}
		if n <= 0 {
			return nil
		}
		buf := s.dirBuf[:n]
		for len(buf) >= 19 {
			reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
			if reclen < 19 || reclen > len(buf) {
				return errors.New("read /proc: malformed dirent")
			}
			name := buf[19:reclen]
			if i := indexNUL(name); i >= 0 {
				name = name[:i]
			}
			if pid, ok := parseUint(name); ok && pid > 0 && pid < 1<<31 {
				fn(int32(pid), binary.NativeEndian.Uint64(buf[0:8]))
			}
			buf = buf[reclen:]
		}
	}
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// discover reads a process seen for the first time.
func (s *Sampler) discover(pid int32, ino uint64, now, boot time.Time, interval time.Duration) *entry {
	e := &entry{statFD: -1, ino: ino}
	if s.kept < s.keepMax {
		fd, err := unix.Openat(s.procFD, strconv.Itoa(int(pid))+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		switch {
		case err == nil:
			e.statFD = int32(fd)
			s.kept++
		case err == unix.EMFILE || err == unix.ENFILE:
			// read with open-read-close instead
		default:
			return nil // gone
		}
	}
	st := &s.stat
	if !s.readStat(pid, e, st) {
		s.closeStat(e)
		return nil
	}
	e.p.PID = pid
	e.p.StartTime = st.StartTime
	e.p.FDs = -1
	e.p.Kernel = st.Flags&PFKthread != 0
	e.applyStat(st, now, s.at, boot, s.pageSize)
	// Born since the previous sample: everything it used is new. (The
	// start time is truncated to a clock tick, so Age may exceed the true
	// age by up to one tick.) An older process gets a rate from its second
	// read; its first is 0, never a lifetime average.
	if interval > 0 && e.p.Age < interval+time.Second/clockTicks {
		e.p.CPUPercent = cpuPercent(e.ticks, max(e.p.Age, time.Second/clockTicks))
	}
	e.idle, e.nextRead = 1, s.gen+1
	if !e.p.Kernel {
		if leaderExited(st) {
			s.followThread(e)
		}
		s.readIDs(e)
		s.readExe(e)
		s.inspect(e)
		e.needCmdline = true
		e.staticTicks = e.ticks
		// Spread the periodic rechecks of processes discovered together.
		e.staticAt = s.at + spread(pid, staticRecheck)
		e.fdsAt = s.at // counted now, then every fd_interval
	}
	e.gen = s.gen
	s.entries[pid] = e
	return e
}

// refresh re-reads a known process; false when it is gone.
func (s *Sampler) refresh(e *entry, now, boot time.Time) bool {
	st := &s.stat
	if !s.readStat(e.p.PID, e, st) || st.StartTime != e.p.StartTime {
		return false
	}
	oldComm, oldTicks, lastRead := e.p.Comm, e.ticks, e.readAt
	exited := leaderExited(st)
	e.applyStat(st, now, s.at, boot, s.pageSize)
	execd := e.execd || e.p.Comm != oldComm
	e.execd = false
	switch {
	case exited:
		// The leader's stat still sums the CPU of every thread; the
		// state, exe and command line are a live thread's.
		if e.tid == 0 || !s.readTaskState(e) {
			execd = s.followThread(e) || execd
		}
	case e.tid != 0: // cannot happen to a leader, but a stale tid must not stay
		e.tid, e.p.LeaderExited = 0, false
	}
	e.p.CPUPercent = cpuPercent(e.ticks-min(oldTicks, e.ticks), s.at-lastRead)
	if e.ticks == oldTicks && e.p.State != 'R' && e.p.State != 'D' {
		e.idle = min(e.idle*2, maxIdleSkip)
	} else {
		e.idle = 1
	}
	e.nextRead = s.gen + uint64(e.idle)
	if e.needCmdline {
		s.readCmdline(e)
	}
	switch {
	case execd: // an exec event, or a new comm
		s.readIDs(e)
		s.readExeCmdline(e)
		s.inspect(e)
	case s.at >= e.staticAt: // a slow recheck for setuid(), if it ran
		if e.ticks != e.staticTicks {
			uid, exe := e.p.UID, e.p.Exe
			ok := s.readIDs(e)
			s.readExe(e) // an exec that kept comm, where no event told (none, or lost)
			switch {
			case ok && e.p.UID != uid || e.p.Exe != exe:
				s.readCmdline(e)
				s.inspect(e)
			case e.p.Inspection != nil:
				s.inspect(e) // libraries loaded since (dlopen)
			}
			e.staticTicks = e.ticks
		}
		e.staticAt = s.at + staticRecheck
	default:
		if in := exeInspector.Load(); in != nil && uint32(in.gen) != e.inspectGen {
			s.inspect(e) // the policy's protected executables changed
		}
	}
	e.gen = s.gen
	return true
}

// sameProcess reports whether e's pid still names the process e was made
// for.
func (s *Sampler) sameProcess(e *entry) bool {
	return s.readStat(e.p.PID, e, &s.stat) && s.stat.StartTime == e.p.StartTime
}

func (s *Sampler) readStat(pid int32, e *entry, st *Stat) bool {
	var n int
	var err error
	if e.statFD >= 0 {
		n, err = unix.Pread(int(e.statFD), s.buf, 0)
	} else {
		n, err = s.readAt(pid, "stat")
	}
	return err == nil && n > 0 && ParseStat(s.buf[:n], st) == nil
}

// readAt reads /proc/PID/name into s.buf (at most its size).
func (s *Sampler) readAt(pid int32, name string) (int, error) {
	fd, err := unix.Openat(s.procFD, strconv.Itoa(int(pid))+"/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.Read(fd, s.buf)
}

func (e *entry) applyStat(st *Stat, now time.Time, at time.Duration, boot time.Time, pageSize uint64) {
	p := &e.p
	p.PPID = st.PPID
	p.State = st.State
	if string(st.Comm) != p.Comm { // no allocation unless it changed
		p.Comm = unique.Make(string(st.Comm)).Value()
	}
	e.ticks = st.UTime + st.STime
	e.readAt = at
	p.CPUTime = time.Duration(e.ticks) * (time.Second / clockTicks)
	p.RSSBytes = uint64(max(st.RSSPages, 0)) * pageSize
	p.Threads = st.Threads
	p.Nice = st.Nice
	p.Started = boot.Add(time.Duration(st.StartTime) * (time.Second / clockTicks))
	p.Age = max(now.Sub(p.Started), 0)
}

func cpuPercent(ticks uint64, over time.Duration) float64 {
	return float64(ticks) / clockTicks / over.Seconds() * 100
}

// readIDs reads the credentials and user name; false when unreadable.
func (s *Sampler) readIDs(e *entry) bool {
	p := &e.p
	n, err := s.readTask(e, "status")
	if err != nil || n <= 0 {
		return false
	}
	ids, err := ParseStatusIDs(s.buf[:n])
	if err != nil {
		return false
	}
	p.User = unique.Make(s.Accounts.Name(ids.UID)).Value() // also when the account was created since
	p.UID, p.EUID, p.GID = ids.UID, ids.EUID, ids.GID
	return true
}

// readExeCmdline reads what changes only at exec: the executable path and
// the command line.
func (s *Sampler) readExeCmdline(e *entry) {
	s.readExe(e)
	s.readCmdline(e)
}

func (s *Sampler) readExe(e *entry) {
	p := &e.p
	if n, err := unix.Readlinkat(s.procFD, taskDir(p.PID, e.tid)+"/exe", s.buf); err == nil {
		exe, deleted := ParseExeLink(string(s.buf[:n]))
		p.Exe = unique.Make(exe).Value()
		p.ExeDeleted = deleted
	}
}

// readCmdline reads the command line. It takes the target's mmap lock
// (access_remote_vm), which a process busy forking holds: reads of it were
// measured blocking for most of a second during a fork bomb, so a new
// process's command line waits for its second read (needCmdline).
func (s *Sampler) readCmdline(e *entry) {
	p := &e.p
	e.needCmdline = false
	if n, err := s.readTask(e, "cmdline"); err == nil {
		p.Cmdline = unique.Make(ParseCmdline(s.buf[:n], MaxCmdline)).Value()
	}
}

// readTask reads /proc/PID/name, or the live thread's when the leader
// exited, into s.buf.
func (s *Sampler) readTask(e *entry, name string) (int, error) {
	if e.tid == 0 {
		return s.readAt(e.p.PID, name)
	}
	fd, err := unix.Openat(s.procFD, taskDir(e.p.PID, e.tid)+"/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.Read(fd, s.buf)
}

// followThread picks a live thread of a process whose leader exited and
// reads its state; it reports whether it found one (what the leader showed
// of exe and command line is then to be re-read from it).
func (s *Sampler) followThread(e *entry) bool {
	e.tid = liveThread(s.procFD, e.p.PID, s.taskBuf)
	if e.tid == 0 || !s.readTaskState(e) {
		e.tid, e.p.LeaderExited = 0, false
		return false
	}
	e.p.LeaderExited = true
	return true
}

// readTaskState reads the state of e's live thread into e.p.State; false
// when that thread is gone.
func (s *Sampler) readTaskState(e *entry) bool {
	n, err := s.readTask(e, "stat")
	var st Stat
	if err != nil || n <= 0 || ParseStat(s.buf[:n], &st) != nil || st.State == 'Z' || st.State == 'X' {
		return false
	}
	e.p.State = st.State
	return true
}

// inspect reads the mapped files and loader environment of a process
// whose executable the inspector watches, and forgets them otherwise.
func (s *Sampler) inspect(e *entry) {
	ok, gen := inspects(e.p.Exe)
	e.inspectGen = uint32(gen)
	if !ok {
		e.p.Inspection = nil
		return
	}
	readLibraries(s.procFD, taskDir(e.p.PID, e.tid), &e.p, s.buf)
}

func countDir(dirfd int, path string, buf []byte) (int, error) {
	fd, err := unix.Openat(dirfd, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	count := 0
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return 0, err
		}
		if n <= 0 {
			return count, nil
		}
		b := buf[:n]
		for len(b) >= 19 {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return 0, errors.New("malformed dirent")
			}
			if name := b[19]; name != '.' {
				count++
			}
			b = b[reclen:]
		}
	}
}

func (s *Sampler) drop(pid int32, e *entry) {
	s.closeStat(e)
	delete(s.entries, pid)
}

func (s *Sampler) closeStat(e *entry) {
	if e.statFD >= 0 {
		unix.Close(int(e.statFD))
		e.statFD = -1
		s.kept--
	}
}

func (s *Sampler) aggregateUsers() {
	aggregateUsers(s.users, s.snap.Procs, func(ppid int32) *Process {
		if e := s.entries[ppid]; e != nil && !e.p.Kernel {
			return &e.p
		}
		return nil
	}, s.Accounts)
}

func (s *Sampler) host(procs int) Host {
	h := Host{Hostname: s.hostname, NCPU: s.ncpu, Procs: procs}
	if n, err := s.readProcFile("loadavg"); err == nil {
		if l, err := ParseLoadAvg(s.buf[:n]); err == nil {
			h.Load1, h.Load5, h.Load15 = l.Load1, l.Load5, l.Load15
		}
	}
	if n, err := s.readProcFile("sys/fs/file-nr"); err == nil {
		if f, err := ParseFileNr(s.buf[:n]); err == nil {
			h.FilesOpen, h.FilesMax, h.FilesOpenPercent = f.Allocated-min(f.Free, f.Allocated), f.Max, f.OpenPercent()
		}
	}
	return h
}

func (s *Sampler) readProcFile(name string) (int, error) {
	fd, err := unix.Openat(s.procFD, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.Read(fd, s.buf)
}

// bootTime is the wall-clock time of boot, from CLOCK_BOOTTIME (which,
// unlike /proc/stat btime, has sub-second precision).
func bootTime() (time.Time, error) {
	// The wall clock and CLOCK_BOOTTIME are read one after the other; a
	// preemption between the two would move the boot time, and with it
	// every process's start time. Bracket the read and keep the tightest
	// of a few tries.
	var best time.Time
	bestGap := time.Duration(-1)
	for range 3 {
		var ts unix.Timespec
		before := time.Now()
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
			return time.Time{}, fmt.Errorf("clock_gettime(CLOCK_BOOTTIME): %w", err)
		}
		after := time.Now()
		gap := after.Sub(before)
		if bestGap < 0 || gap < bestGap {
			best, bestGap = before.Add(gap/2-time.Duration(ts.Nano())), gap
		}
		if gap < 20*time.Microsecond {
			break
		}
	}
	return best.Round(0), nil // wall clock only: a step of it must show
}

// NoteExec tells the sampler that pid called execve (a proc connector
// event): the next sample re-reads its credentials, executable, command
// line and inspection even if its comm stayed the same (a customer's
// `exec /tmp/kit/bash` from bash keeps "bash"). Unlike the rest of the
// Sampler, it is safe to call from another goroutine.
func (s *Sampler) NoteExec(pid int32) { s.notes.note(pid) }

// Alive reports whether the process id was alive at the last sample.
func (s *Sampler) Alive(id ProcID) bool {
	e := s.entries[id.PID]
	return e != nil && e.p.StartTime == id.StartTime
}
