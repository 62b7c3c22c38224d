package platform

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rateGap is the wall time between the two samples of a CPU rate.
const rateGap = time.Second

// sleepUntil waits until t: measuring a rate needs wall time to pass.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// startBurner starts a helper that burns one CPU.
func startBurner(t *testing.T) *child {
	t.Helper()
	return startHelper(t, "burn")
}

// checkRate checks a burning child's CPUPercent against the share of a CPU
// it reports for itself over a window enclosing the samples (ownCPU over
// ownWall), and against 50..110 when the host let it run. go test runs
// packages in parallel, and other tests burn CPU too: on a busy host the
// child gets less than a core, and the two windows differ by scheduling
// delays, hence the tolerance.
func checkRate(t *testing.T, got float64, ownCPU, ownWall time.Duration) {
	t.Helper()
	own := ownCPU.Seconds() / ownWall.Seconds() * 100
	if !approx(got, own, max(10, own/5)) {
		t.Errorf("burning child: CPUPercent = %.1f, but it used %.1f%% of a CPU by its own account", got, own)
	}
	if own < 55 {
		t.Logf("host busy: the burning child got only %.1f%% of a CPU; 50..110 not checked", own)
		return
	}
	if got < 50 || got > 110 {
		t.Errorf("burning child: CPUPercent = %.1f, want 50..110", got)
	}
}

func TestSamplerCPUPercent(t *testing.T) {
	burn := startBurner(t)
	idle := startHelper(t, "idle")
	s := newSampler(t, nil)

	ownCPU0, ownT0 := burn.cpu(t), time.Now()
	first := sample(t, s)
	if first.Interval != 0 {
		t.Errorf("first Interval = %v, want 0", first.Interval)
	}
	for _, c := range []*child{burn, idle} {
		// First sight of a process older than the (absent) interval: no
		// rate yet, rather than a lifetime average.
		if p := mustFind(t, first, c.pid); p.CPUPercent != 0 {
			t.Errorf("pid %d: CPUPercent %v on first sight, want 0", c.pid, p.CPUPercent)
		}
	}
	sleepUntil(first.Time.Add(rateGap))
	cpuBefore := mustFind(t, first, burn.pid).CPUTime // copied: the snapshot is reused
	second := sample(t, s)
	ownCPU1, ownT1 := burn.cpu(t), time.Now()

	if second.Interval < rateGap || second.Interval > rateGap+500*time.Millisecond {
		t.Errorf("Interval = %v, want about %v", second.Interval, rateGap)
	}
	b := mustFind(t, second, burn.pid)
	checkRate(t, b.CPUPercent, ownCPU1-ownCPU0, ownT1.Sub(ownT0))
	// The rate is the CPU time used between the samples over the interval.
	used := (b.CPUTime - cpuBefore).Seconds() / second.Interval.Seconds() * 100
	if !approx(b.CPUPercent, used, 1.5) {
		t.Errorf("CPUPercent %.2f, but CPUTime grew by %.2f%% of the interval", b.CPUPercent, used)
	}
	if b.State != 'R' && b.State != 'S' { // S: preempted between a tick and the read is rare but possible
		t.Errorf("burning child state %q", b.State)
	}
	if b.Threads < 2 {
		t.Errorf("Go helper has %d threads, want several", b.Threads)
	}
	if i := mustFind(t, second, idle.pid); i.CPUPercent >= 5 {
		t.Errorf("idle child: CPUPercent = %.1f, want < 5", i.CPUPercent)
	}
}

func TestSamplerExitedChildDisappears(t *testing.T) {
	c := startHelper(t, "idle")
	s := newSampler(t, nil)
	p := mustFind(t, sample(t, s), c.pid)
	id := p.ProcID

	// Exited but not reaped: still listed, as a zombie, and counted.
	c.exitAndWaitZombie(t)
	snap := sample(t, s)
	z := mustFind(t, snap, c.pid)
	if z.State != 'Z' || z.ProcID != id {
		t.Errorf("exited child: state %q id %v, want a zombie with id %v", z.State, z.ProcID, id)
	}
	if snap.Users[z.UID].Zombies < 1 {
		t.Errorf("UserStats[%d].Zombies = %d, want >= 1", z.UID, snap.Users[z.UID].Zombies)
	}

	// Reaped: gone from the next snapshot.
	c.cmd.Wait()
	if p := find(sample(t, s), c.pid); p != nil {
		t.Errorf("reaped child %d still listed: %s", c.pid, dumpProc(p))
	}
}

func TestSamplerHostileComm(t *testing.T) {
	c := startHelper(t, "comm")
	s := newSampler(t, nil)
	p := mustFind(t, sample(t, s), c.pid)
	if p.Comm != helperComm {
		t.Errorf("Comm = %q, want %q", p.Comm, helperComm)
	}
	// The name does not shift the fields after it.
	// (Just after "ready" the helper may still be running.)
	if p.PPID != int32(os.Getpid()) || p.UID != uint32(os.Getuid()) || (p.State != 'S' && p.State != 'R') {
		t.Errorf("ppid %d uid %d state %q; want %d %d, S or R", p.PPID, p.UID, p.State, os.Getpid(), os.Getuid())
	}
}

func TestSamplerExeAndCmdline(t *testing.T) {
	c := startHelper(t, "idle", "arg with spaces", "tab\there", "", "ünïcode")
	s := newSampler(t, nil)
	first := mustFind(t, sample(t, s), c.pid)
	if first.Cmdline != "" {
		t.Errorf("Cmdline read at first sight (%q): it waits for the second (readCmdline)", first.Cmdline)
	}
	p := mustFind(t, sample(t, s), c.pid)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	if p.Exe != exe || p.ExeDeleted {
		t.Errorf("Exe = %q deleted=%v, want %q", p.Exe, p.ExeDeleted, exe)
	}
	if want := cmdlineOf(c.args); p.Cmdline != want {
		t.Errorf("Cmdline = %q, want %q", p.Cmdline, want)
	}
	if want := filepath.Base(exe); !strings.HasPrefix(want, p.Comm) || len(p.Comm) != min(len(want), 15) {
		t.Errorf("Comm = %q, want the first 15 bytes of %q", p.Comm, want)
	}
	if p.User != s.Accounts.Name(uint32(os.Getuid())) || p.EUID != uint32(os.Geteuid()) || p.GID != uint32(os.Getgid()) {
		t.Errorf("User %q EUID %d GID %d", p.User, p.EUID, p.GID)
	}
	if p.Age <= 0 || p.Age > time.Minute || time.Since(p.Started) > time.Minute || p.Started.After(time.Now()) {
		t.Errorf("Started %v Age %v: not a process started just now", p.Started, p.Age)
	}
	if p.RSSBytes < 1<<20 {
		t.Errorf("RSSBytes %d: a Go binary is bigger", p.RSSBytes)
	}
}

// TestSamplerDeletedExe: a tool run from /tmp and deleted after start (a
// cracker's habit) is reported with its path and ExeDeleted.
func TestSamplerDeletedExe(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "kit")
	copyFile(t, self, copyPath)
	c := startCmd(t, copyPath, "idle", nil, nil)
	if err := os.Remove(copyPath); err != nil {
		t.Fatal(err)
	}
	s := newSampler(t, nil)
	p := mustFind(t, sample(t, s), c.pid)
	if p.Exe != copyPath || !p.ExeDeleted {
		t.Errorf("Exe = %q deleted=%v, want %q deleted", p.Exe, p.ExeDeleted, copyPath)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSamplerExec: after an exec, the next sample shows the new exe,
// command line and name (exec is detected by the comm changing).
func TestSamplerExec(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := startCmd(t, self, "exec", nil, []*os.File{w})
	w.Close()
	s := newSampler(t, nil)
	before := *mustFind(t, sample(t, s), c.pid)

	io.WriteString(c.stdin, "exec\n")
	// EOF on the close-on-exec pipe: the exec has happened.
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("exec pipe: %d, %v", n, err)
	}
	p := mustFind(t, sample(t, s), c.pid)
	sleep, err := filepath.EvalSymlinks("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if p.Comm != "sleep" || p.Exe != sleep || p.Cmdline != "sleep 3600" {
		t.Errorf("after exec: comm %q exe %q cmdline %q; want sleep, %s, \"sleep 3600\"", p.Comm, p.Exe, p.Cmdline, sleep)
	}
	if p.ProcID != before.ProcID {
		t.Errorf("exec changed the identity: %v -> %v", before.ProcID, p.ProcID)
	}
}

// TestSamplerBornBetweenSamples: a process born since the previous sample
// gets a rate over its own lifetime; an old process seen for the first time
// later on gets 0, not its lifetime average.
func TestSamplerBornBetweenSamples(t *testing.T) {
	s := newSampler(t, nil)
	first := sample(t, s)
	c := startBurner(t)
	sleepUntil(first.Time.Add(rateGap))
	second := sample(t, s)
	own := c.cpu(t)
	p := mustFind(t, second, c.pid)
	// Its whole life lies between the samples: the rate is over its age.
	checkRate(t, p.CPUPercent, own, time.Since(p.Started))

	// Forget the child, as if the sampler had missed it, and let it age
	// past one interval: its first sight now yields 0.
	e := s.entries[c.pid]
	s.drop(c.pid, e)
	sleepUntil(second.Time.Add(rateGap / 2))
	third := sample(t, s)
	p = mustFind(t, third, c.pid)
	if p.Age < third.Interval {
		t.Fatalf("child age %v < interval %v", p.Age, third.Interval)
	}
	if p.CPUPercent != 0 || p.CPUTime <= 0 {
		t.Errorf("old child seen again: CPUPercent %.1f (want 0), CPUTime %v (want > 0)", p.CPUPercent, p.CPUTime)
	}
	ownCPU0, ownT0 := c.cpu(t), time.Now()
	sleepUntil(third.Time.Add(rateGap))
	p = mustFind(t, sample(t, s), c.pid)
	ownCPU1, ownT1 := c.cpu(t), time.Now()
	checkRate(t, p.CPUPercent, ownCPU1-ownCPU0, ownT1.Sub(ownT0))
}

// TestSamplerUsers runs a child as another uid (root only) and checks the
// per-user aggregate with names and groups from our own account files.
func TestSamplerUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child as another uid")
	}
	const uid, gid = 65534, 65534
	dir := t.TempDir()
	pw, gr := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	os.WriteFile(pw, []byte("root:x:0:0::/root:/bin/sh\ngdt-user:x:65534:65534::/nonexistent:/bin/false\n"), 0o644)
	os.WriteFile(gr, []byte("gdt-primary:x:65534:\ngdt-web:x:3000:root,gdt-user\ngdt-other:x:3001:root\n"), 0o644)
	acc := &Accounts{PasswdPath: pw, GroupPath: gr}

	startBurner(t) // root's CPU
	var others []*child
	for range 3 {
		others = append(others, startAs(t, uid, gid))
	}
	s := newSampler(t, acc)
	first := sample(t, s)
	sleepUntil(first.Time.Add(rateGap))
	snap := sample(t, s)

	u := snap.Users[uid]
	if u == nil {
		t.Fatalf("no UserStats for uid %d", uid)
	}
	if u.Name != "gdt-user" || !slices.Equal(u.Groups, []string{"gdt-primary", "gdt-web"}) {
		t.Errorf("UserStats[%d]: name %q groups %q", uid, u.Name, u.Groups)
	}
	if u.Procs != int32(len(others)) || u.CPUPercent >= 5 {
		t.Errorf("UserStats[%d]: %d procs at %.1f%% CPU, want %d idle ones", uid, u.Procs, u.CPUPercent, len(others))
	}
	for _, c := range others {
		if p := mustFind(t, snap, c.pid); p.User != "gdt-user" || p.UID != uid || p.GID != gid {
			t.Errorf("pid %d: user %q uid %d gid %d", c.pid, p.User, p.UID, p.GID)
		}
	}
	root := snap.Users[0]
	if root == nil || root.Name != "root" || root.CPUPercent < 10 {
		t.Errorf("root's UserStats %+v: want name root and the burning child's CPU", root)
	}
	if !slices.Equal(root.Groups, []string{"gdt-web", "gdt-other"}) {
		t.Errorf("root's groups %q", root.Groups)
	}
}

// startAs starts /bin/sleep as uid:gid (the test binary itself is not
// readable by another uid in its private build directory).
func startAs(t *testing.T, uid, gid uint32) *child {
	t.Helper()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	// ForkExec returns once the exec has succeeded (or with its error).
	pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "3600"}, &syscall.ProcAttr{
		Files: []uintptr{devnull.Fd(), devnull.Fd(), devnull.Fd()},
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uid, Gid: gid},
			Pdeathsig:  syscall.SIGKILL,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	})
	return &child{pid: int32(pid)}
}

func TestSamplerHost(t *testing.T) {
	s := newSampler(t, nil)
	before, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	snap := sample(t, s)
	after, _ := os.ReadFile("/proc/loadavg")
	h := snap.Host

	if h.NCPU < 1 || h.NCPU < runtime.NumCPU() {
		t.Errorf("NCPU = %d, but this process may run on %d CPUs", h.NCPU, runtime.NumCPU())
	}
	var found bool
	for _, b := range [][]byte{before, after} {
		if l, err := ParseLoadAvg(b); err == nil && l.Load1 == h.Load1 && l.Load5 == h.Load5 && l.Load15 == h.Load15 {
			found = true
		}
	}
	if !found {
		t.Errorf("load %v %v %v matches neither %q nor %q", h.Load1, h.Load5, h.Load15, before, after)
	}
	if hn, _ := os.Hostname(); h.Hostname != hn {
		t.Errorf("Hostname %q, want %q", h.Hostname, hn)
	}
	if h.FilesOpen == 0 || h.FilesMax <= h.FilesOpen || h.FilesOpenPercent <= 0 || h.FilesOpenPercent >= 100 ||
		!approx(h.FilesOpenPercent, float64(h.FilesOpen)/float64(h.FilesMax)*100, 1e-9) {
		t.Errorf("file table: open %d max %d (%.4f%%)", h.FilesOpen, h.FilesMax, h.FilesOpenPercent)
	}
	// Host.Procs counts kernel threads too: compare with a listing of /proc.
	n := countProcs(t)
	if h.Procs < n-20 || h.Procs > n+20 {
		t.Errorf("Host.Procs = %d, /proc lists %d", h.Procs, n)
	}
	if self := mustFind(t, snap, int32(os.Getpid())); self.Comm == "" || self.CPUTime <= 0 {
		t.Errorf("own process: %s", dumpProc(self))
	}
	for _, p := range snap.Procs {
		if p.PID == 2 || p.PPID == 2 {
			t.Errorf("kernel thread %d (%s) listed as a process", p.PID, p.Comm)
		}
	}
}

func countProcs(t *testing.T) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}

func TestSamplerFDs(t *testing.T) {
	many := startHelper(t, "fds")
	idle := startHelper(t, "idle")
	s := newSampler(t, nil)
	snap := sample(t, s)
	m, i := mustFind(t, snap, many.pid), mustFind(t, snap, idle.pid)
	if m.FDs < helperExtraFDs+3 {
		t.Errorf("child with %d extra descriptors: FDs = %d", helperExtraFDs, m.FDs)
	}
	if i.FDs < 3 || i.FDs >= m.FDs-helperExtraFDs+10 {
		t.Errorf("idle child: FDs = %d (the other has %d)", i.FDs, m.FDs)
	}
	if snap.Users[m.UID].FDs < int64(m.FDs)+int64(i.FDs) {
		t.Errorf("UserStats.FDs = %d, less than its two children's %d", snap.Users[m.UID].FDs, m.FDs+i.FDs)
	}
}

// deadStatFD returns a descriptor of /proc/PID/stat of a process that has
// exited and been reaped: reads from it fail with ESRCH, as they do for
// the descriptor the sampler kept for a process whose pid was then reused.
func deadStatFD(t *testing.T) int {
	t.Helper()
	c := startHelper(t, "idle")
	fd, err := unix.Open("/proc/"+strconv.Itoa(int(c.pid))+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.stdin.Close()
	c.cmd.Wait()
	if _, err := unix.Pread(fd, make([]byte, 512), 0); err != unix.ESRCH {
		t.Fatalf("read of a reaped process's stat: %v, want ESRCH", err)
	}
	return fd
}

// TestSamplerPIDReuse: the sampler's entry for a pid belongs to a process
// that exited, and the pid now names a new process. The new process must
// be read afresh, whether the old one was a user process or a kernel
// thread (kworkers come and go, and a fork storm cycles through the pids).
func TestSamplerPIDReuse(t *testing.T) {
	for _, kernel := range []bool{false, true} {
		t.Run("kernel="+strconv.FormatBool(kernel), func(t *testing.T) {
			c := startHelper(t, "idle")
			s := newSampler(t, nil)
			first := sample(t, s)
			real := *mustFind(t, first, c.pid)

			// Pretend the entry was made for an older process at this pid.
			e := s.entries[c.pid]
			unix.Close(int(e.statFD))
			e.statFD = int32(deadStatFD(t))
			e.p.StartTime--
			e.p.Comm = "kworker/0:1"
			e.p.Kernel = kernel
			e.ticks = 0
			e.ino-- // a reused pid is listed under a new /proc/PID inode

			sleepUntil(first.Time.Add(rateGap / 2))
			snap := sample(t, s)
			p := find(snap, c.pid)
			if p == nil {
				t.Fatalf("pid %d hidden behind the entry of the process that had it before", c.pid)
			}
			if p.ProcID != real.ProcID || p.Comm != real.Comm || p.Kernel {
				t.Errorf("got %v %q kernel=%v, want %v %q", p.ProcID, p.Comm, p.Kernel, real.ProcID, real.Comm)
			}
			// First sight of a process older than the interval: 0, and
			// not a delta against the old process's ticks.
			if p.CPUPercent != 0 {
				t.Errorf("CPUPercent %.1f, want 0 on first sight", p.CPUPercent)
			}
		})
	}
}

// TestSamplerFDLimit: with few descriptors under RLIMIT_NOFILE, every
// process is still sampled, rates included, and the sampler leaves
// descriptors for the rest of the daemon. "tight" leaves fewer than
// fdReserve (nothing may be kept open); "cap" lets the sampler keep some
// stat descriptors and read the other processes with open-read-close.
func TestSamplerFDLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra int // descriptors allowed beyond those open now
	}{{"tight", 40}, {"cap", fdReserve + 10}} {
		t.Run(tc.name, func(t *testing.T) { testFDLimit(t, tc.extra) })
	}
}

func testFDLimit(t *testing.T, extra int) {
	var kids []*child
	for range 8 {
		kids = append(kids, startHelper(t, "idle"))
	}
	burn := startBurner(t)
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	open := countOpenFDs(t)
	lim := old
	lim.Cur = uint64(open + extra)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()

	s, err := NewSampler(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	n1 := len(first.Procs)
	ownCPU0, ownT0 := burn.cpu(t), time.Now()
	sleepUntil(first.Time.Add(rateGap))
	second, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	ownCPU1, ownT1 := burn.cpu(t), time.Now()
	// The daemon can still open files while the sampler runs at the limit.
	f, ferr := os.Open(os.DevNull)
	if ferr == nil {
		f.Close()
	}
	kept := 0
	for _, e := range s.entries {
		if e.statFD >= 0 {
			kept++
		}
	}
	restore()
	if ferr != nil {
		t.Errorf("the sampler left no descriptors: %v", ferr)
	}
	checkSnapshot(t, second)
	if n := len(s.entries); kept > s.keepMax || (n > s.keepMax && kept >= n) {
		t.Errorf("%d of %d processes kept a descriptor under a limit of %d (keepMax %d)", kept, n, lim.Cur, s.keepMax)
	}
	t.Logf("limit %d: %d of %d processes read through a kept descriptor", lim.Cur, kept, len(s.entries))
	for _, c := range kids {
		p := find(second, c.pid)
		if p == nil {
			t.Errorf("pid %d missing under a low descriptor limit (%d processes sampled, %d the tick before)",
				c.pid, len(second.Procs), n1)
			continue
		}
		if p.UID != uint32(os.Getuid()) || p.Exe == "" || p.Cmdline == "" {
			t.Errorf("pid %d: uid %d exe %q cmdline %q", c.pid, p.UID, p.Exe, p.Cmdline)
		}
	}
	checkRate(t, mustFind(t, second, burn.pid).CPUPercent, ownCPU1-ownCPU0, ownT1.Sub(ownT0))
	if second.Host.Load1 == 0 && second.Host.FilesOpen == 0 {
		t.Error("host facts were not read")
	}
}

func countOpenFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestSamplerSnapshotReuse: the snapshot is reused, and exited processes
// do not linger in the backing array.
func TestSamplerSnapshotReuse(t *testing.T) {
	c := startHelper(t, "idle")
	s := newSampler(t, nil)
	first := sample(t, s)
	mustFind(t, first, c.pid)
	c.stdin.Close()
	c.cmd.Wait()
	second := sample(t, s)
	if first != second {
		t.Error("Sample returned a new Snapshot: the memory is meant to be reused")
	}
	full := second.Procs[:cap(second.Procs)]
	for _, p := range full[len(second.Procs):] {
		if p != nil {
			t.Errorf("stale pointer past the end of Procs: pid %d", p.PID)
		}
	}
}

func TestSamplerClose(t *testing.T) {
	s, err := NewSampler(nil)
	if err != nil {
		t.Fatal(err)
	}
	sample(t, s)
	kept := 0
	for _, e := range s.entries {
		if e.statFD >= 0 {
			kept++
		}
	}
	before := countOpenFDs(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Sample(); err == nil {
		t.Error("Sample after Close succeeded")
	}
	if after := countOpenFDs(t); before-after < kept+1 {
		t.Errorf("Close released %d descriptors, want %d (kept stat files and /proc)", before-after, kept+1)
	}
}

// TestSamplerIdleBackoff: a process that does not run is read less and
// less often (every maxIdleSkip ticks at most), its age stays current, and
// once it runs again it is seen within maxIdleSkip ticks and read every
// tick from then on.
func TestSamplerIdleBackoff(t *testing.T) {
	c := startHelper(t, "idle")
	s := newSampler(t, nil)
	sample(t, s)
	reads := 0
	last := s.entries[c.pid].readAt
	const ticks = 4 * maxIdleSkip
	for range ticks {
		snap := sample(t, s)
		e := s.entries[c.pid]
		if e.readAt != last {
			reads++
			last = e.readAt
		}
		if p := mustFind(t, snap, c.pid); p.Age < snap.Time.Sub(p.Started)-time.Millisecond {
			t.Fatalf("age %s not current on an unread tick (want %s)", p.Age, snap.Time.Sub(p.Started))
		}
	}
	// Reads at 1, 2, 4, 8, then every 8 ticks.
	if max := 4 + (ticks-15)/maxIdleSkip + 1; reads > max || reads < 3 {
		t.Errorf("idle process read %d times in %d ticks, want 3..%d", reads, ticks, max)
	}
	if e := s.entries[c.pid]; e.idle != maxIdleSkip {
		t.Errorf("idle backoff %d, want %d", e.idle, maxIdleSkip)
	}

	io.WriteString(c.stdin, "burn\n")
	if line, err := c.stdout.ReadString('\n'); err != nil || line != "burning\n" {
		t.Fatalf("helper: %q %v", line, err)
	}
	// The next read comes within maxIdleSkip ticks, whatever the load.
	before := s.entries[c.pid].readAt
	read := -1
	for i := 1; i <= maxIdleSkip && read < 0; i++ {
		sample(t, s)
		if s.entries[c.pid].readAt != before {
			read = i
		}
	}
	if read < 0 {
		t.Fatalf("idle process not read within %d ticks", maxIdleSkip)
	}
	// Once a read sees it ran, it is read every tick. (On a loaded host the
	// burner may get no CPU in a short gap: wait for a read that sees some.)
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(50 * time.Millisecond) // a gap for CPU time to accrue between two ticks
		p := mustFind(t, sample(t, s), c.pid)
		e := s.entries[c.pid]
		if p.CPUPercent > 0 {
			if e.idle != 1 || e.nextRead != s.gen+1 {
				t.Errorf("running process: backoff %d, next read at %d (now %d), want every tick", e.idle, e.nextRead, s.gen)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the burning process never showed CPU use")
		}
	}
}

// The activity probe: a uid that did not run is not read (the backoff
// would have read some of its processes), one that ran is read at once,
// and the probe is asked once per sample and uid.
func TestActivityProbe(t *testing.T) {
	s, err := NewSampler(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 2*maxIdleSkip + 1 {
		if _, err := s.Sample(); err != nil {
			t.Fatal(err)
		}
	}
	me := uint32(os.Getuid())
	answer := ActivityNone
	asked := map[uint32]int{}
	s.SetActivityProbe(func(uid uint32) Activity {
		asked[uid]++
		if uid == me {
			return answer
		}
		return ActivityUnknown
	})
	for range 2 * maxIdleSkip {
		clear(asked)
		if _, err := s.Sample(); err != nil {
			t.Fatal(err)
		}
		for uid, n := range asked {
			if n != 1 {
				t.Fatalf("uid %d asked %d times in one sample", uid, n)
			}
		}
	}
	if s.ProbeSkips() == 0 {
		t.Fatal("no read saved over 16 samples of a uid that did not run")
	}
	// Ran: every process of the uid is due now.
	answer = ActivitySome
	if _, err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	read, mine := 0, 0
	for _, e := range s.entries {
		if e.p.UID == me && !e.p.Kernel {
			mine++
			if e.readAt == s.at {
				read++
			}
		}
	}
	if read != mine {
		t.Fatalf("%d of the %d processes of a uid that ran were read in that sample, want all", read, mine)
	}
}
