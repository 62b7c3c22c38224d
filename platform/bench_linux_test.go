package platform

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// benchProcsEnv asks BenchmarkSample to spawn that many extra idle
// processes first (as root), to measure a host of the size in DESIGN.md §6:
//
//	GUARDD_BENCH_PROCS=5000 go test -run='^$' -bench=Sample -benchtime=3s ./platform/
const benchProcsEnv = "GUARDD_BENCH_PROCS"

// cpuTime is the CPU (user+system) this process used so far, all threads:
// the garbage collector's work counts too, for us and for procfs alike.
func cpuTime(tb testing.TB) time.Duration {
	u, s := cpuSplit(tb)
	return u + s
}

// cpuSplit is cpuTime as user and system time.
func cpuSplit(tb testing.TB) (user, sys time.Duration) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// spawnIdle starts n /bin/sleep processes that die with the benchmark
// (PR_SET_PDEATHSIG) and are killed and reaped at cleanup.
func spawnIdle(b *testing.B, n int) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	attr := &syscall.ProcAttr{
		Files: []uintptr{devnull.Fd(), devnull.Fd(), devnull.Fd()},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	var mu sync.Mutex // guards pids
	pids := make([]int, 0, n)
	b.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range pids {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	})
	// fork+exec takes milliseconds here, mostly waiting: spawn in parallel.
	start := time.Now()
	const workers = 8
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for range n/workers + btoi(w < n%workers) {
				pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "3600"}, attr)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				pids = append(pids, pid)
				mu.Unlock()
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			b.Fatalf("spawning %d processes: %v", n, err)
		}
	}
	b.Logf("spawned %d idle processes in %v", len(pids), time.Since(start).Round(time.Millisecond))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// floors measures, on the sampler's own descriptors, the bare kernel work
// a tick cannot avoid: listing /proc, and one pread of every kept
// /proc/PID/stat; and for comparison the pread of /proc/PID/schedstat
// (CPU time only), a cheaper file. Each is the mean of three passes.
func floors(b *testing.B, s *Sampler) (list, stat, schedstat time.Duration) {
	buf := make([]byte, 4096)
	var fds []int
	for pid := range s.entries {
		fd, err := unix.Open("/proc/"+strconv.Itoa(int(pid))+"/schedstat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			fds = append(fds, fd)
		}
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	const rounds = 3
	c0 := cpuTime(b)
	for range rounds {
		s.listPIDs(func(int32, uint64) {})
	}
	c1 := cpuTime(b)
	for range rounds {
		for _, e := range s.entries {
			if e.statFD >= 0 {
				unix.Pread(int(e.statFD), buf, 0)
			}
		}
	}
	c2 := cpuTime(b)
	for range rounds {
		for _, fd := range fds {
			unix.Pread(fd, buf, 0)
		}
	}
	c3 := cpuTime(b)
	return (c1 - c0) / rounds, (c2 - c1) / rounds, (c3 - c2) / rounds
}

// BenchmarkSample measures one sampling tick in CPU time, and beside it,
// in the same run, the CPU cost of one full scan by the peers of
// DESIGN.md §6: ps(1) and prometheus/procfs.
func BenchmarkSample(b *testing.B) {
	if v := os.Getenv(benchProcsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			b.Fatalf("%s=%q: want a count", benchProcsEnv, v)
		}
		if os.Getuid() != 0 {
			b.Logf("%s set but not root: sampling the host as it is", benchProcsEnv)
		} else {
			spawnIdle(b, n)
		}
	}

	// Ours. Heap per process: the sampler's live heap after a few ticks.
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	s, err := NewSampler(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c0 := cpuTime(b)
	snap, err := s.Sample() // discovery: opens and reads every process
	if err != nil {
		b.Fatal(err)
	}
	firstTick := cpuTime(b) - c0
	for range 3 {
		if snap, err = s.Sample(); err != nil {
			b.Fatal(err)
		}
	}
	procs := snap.Host.Procs
	runtime.GC()
	runtime.ReadMemStats(&m1)
	heap := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)

	// The steady tick, as in the daemon's loop. Idle processes are read
	// every maxIdleSkip ticks, so after warm-up this is the cost on a host
	// whose processes mostly sleep.
	for range 2 * maxIdleSkip {
		if _, err := s.Sample(); err != nil {
			b.Fatal(err)
		}
	}
	ticks := 0
	u0, s0 := cpuSplit(b)
	for b.Loop() {
		if _, err := s.Sample(); err != nil {
			b.Fatal(err)
		}
		ticks++
	}
	u1, s1 := cpuSplit(b)
	tick := (u1 - u0 + s1 - s0) / time.Duration(ticks)
	sysShare := float64(s1-s0) / float64(u1-u0+s1-s0) * 100

	// The worst case: every process ran since the last tick and must be
	// read (a host where all 5,000 are busy).
	busy := tickCost(b, s, 3, func(e *entry) { e.nextRead = 0 })

	// Periodic work that b.Loop is too short to reach: each process's uid
	// is re-read every staticRecheck and its descriptors counted every
	// FDInterval, spread over those periods. Measure each for all
	// processes at once, and amortize it over the ticks of its period.
	// A process that did not run since cannot have changed: those are
	// skipped, so with idle processes this is the worst case, as if every
	// process had run.
	static := tickCost(b, s, 1, func(e *entry) { e.staticAt, e.staticTicks, e.nextRead = 0, ^uint64(0), 0 }) - busy
	fds := tickCost(b, s, 1, func(e *entry) { e.fdsAt, e.fdsTicks = 0, ^uint64(0) }) - tick
	amortized := time.Duration(float64(static)*float64(time.Second)/float64(staticRecheck) +
		float64(fds)*float64(time.Second)/float64(10*time.Second))
	recheck := static + fds
	busy += amortized
	listFloor, statFloor, schedFloor := floors(b, s)
	runtime.KeepAlive(s)

	psCPU := benchPS(b)
	procfsCPU, procfsN := benchProcfs(b)

	b.ReportMetric(float64(procs), "procs")
	b.ReportMetric(ms(tick), "cpu-ms/tick")
	b.ReportMetric(ms(busy), "all-busy-cpu-ms/tick")
	b.ReportMetric(ms(recheck), "recheck-all-cpu-ms")
	b.ReportMetric(ms(firstTick), "first-cpu-ms")
	b.ReportMetric(ms(psCPU), "ps-cpu-ms")
	b.ReportMetric(ms(procfsCPU), "procfs-cpu-ms")
	b.ReportMetric(float64(psCPU)/float64(tick), "x-faster-than-ps")
	b.ReportMetric(float64(psCPU)/float64(busy), "all-busy-x-faster-than-ps")
	b.ReportMetric(float64(procfsCPU)/float64(tick), "x-faster-than-procfs")
	b.ReportMetric(float64(heap)/float64(procs), "heap-bytes/proc")
	b.ReportMetric(ms(listFloor+statFloor), "floor-cpu-ms")
	b.Logf("%d processes (%d user, procfs saw %d): tick %.2f ms CPU with idle processes, %.0f%% in the kernel; "+
		"every process busy %.2f ms (%.2f ms of it rechecks amortized over a 1s interval); all rechecks at once %.1f ms; first tick %.1f ms; "+
		"ps %.1f ms, procfs %.1f ms; sampler heap %.1f MiB, %.0f bytes/process",
		procs, len(snap.Procs), procfsN, ms(tick), sysShare, ms(busy), ms(amortized), ms(recheck), ms(firstTick), ms(psCPU), ms(procfsCPU),
		float64(heap)/(1<<20), float64(heap)/float64(procs))
	b.Logf("floors: list /proc %.2f ms + pread every stat %.2f ms = %.2f ms; pread every schedstat %.2f ms",
		ms(listFloor), ms(statFloor), ms(listFloor+statFloor), ms(schedFloor))
}

// tickCost is the mean CPU time of n ticks, each after prepare was applied
// to every entry.
func tickCost(b *testing.B, s *Sampler, n int, prepare func(*entry)) time.Duration {
	var total time.Duration
	for range n {
		for _, e := range s.entries {
			prepare(e)
		}
		c0 := cpuTime(b)
		if _, err := s.Sample(); err != nil {
			b.Fatal(err)
		}
		total += cpuTime(b) - c0
	}
	return total / time.Duration(n)
}

// benchPS returns the CPU time of one `ps -eo pid,uid,pcpu,rss,etimes,stat,comm`
// (its own user+system time), the best of three runs.
func benchPS(b *testing.B) time.Duration {
	best := time.Duration(1<<63 - 1)
	for range 3 {
		cmd := exec.Command("ps", "-eo", "pid,uid,pcpu,rss,etimes,stat,comm")
		if err := cmd.Run(); err != nil {
			b.Fatalf("ps: %v", err)
		}
		best = min(best, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
	}
	return best
}

// benchProcfs returns our CPU time for one procfs scan (AllProcs, then Stat
// and NewStatus of each), the mean of three after a warm-up, and the count
// of processes it listed.
func benchProcfs(b *testing.B) (time.Duration, int) {
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		b.Fatal(err)
	}
	scan := func() int {
		procs, err := fs.AllProcs()
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range procs {
			// Errors are processes that exited meanwhile: skipped, as the
			// sampler does.
			if _, err := p.Stat(); err != nil {
				continue
			}
			p.NewStatus()
		}
		return len(procs)
	}
	scan()
	const rounds = 3
	c0 := cpuTime(b)
	n := 0
	for range rounds {
		n = scan()
	}
	return (cpuTime(b) - c0) / rounds, n
}

// BenchmarkSampleActivityProbe: the steady tick of the same idle host
// without and with an activity probe that says the processes' uid did
// not run (what per-customer isolation knows from a customer's group CPU
// counter), each probe answer costing one pread of a real cgroup counter
// file, as the isolation capability's does. The idle backoff still reads
// every idle process every maxIdleSkip ticks; with the probe, none.
//
//	GUARDD_BENCH_PROCS=5000 go test -run='^$' -bench=SampleActivityProbe -benchtime=3s -count=1 ./platform/
func BenchmarkSampleActivityProbe(b *testing.B) {
	if v := os.Getenv(benchProcsEnv); v != "" && os.Getuid() == 0 {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			b.Fatalf("%s=%q: want a count", benchProcsEnv, v)
		}
		spawnIdle(b, n)
	}
	layout, err := DiscoverCgroups()
	if err != nil {
		b.Fatal(err)
	}
	counter, err := OpenGroupStats(layout, "", StatCPUUsage)
	if err != nil {
		b.Skipf("no cgroup CPU counter to read: %v", err)
	}
	defer counter.Close()
	s, err := NewSampler(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	warm := func() {
		for range 2*maxIdleSkip + 1 {
			if _, err := s.Sample(); err != nil {
				b.Fatal(err)
			}
		}
	}
	measure := func(ticks int) time.Duration {
		u0, s0 := cpuSplit(b)
		for range ticks {
			if _, err := s.Sample(); err != nil {
				b.Fatal(err)
			}
		}
		u1, s1 := cpuSplit(b)
		return (u1 - u0 + s1 - s0) / time.Duration(ticks)
	}
	warm()
	ticks := 8 * maxIdleSkip
	without := measure(ticks)
	probes := 0
	spawned := uint32(os.Getuid())
	s.SetActivityProbe(func(uid uint32) Activity {
		probes++
		var st GroupStats
		counter.Read(&st) // the cost of asking a real group
		if uid == spawned {
			return ActivityNone
		}
		return ActivityUnknown
	})
	warm()
	probes = 0
	skips0 := s.ProbeSkips()
	var with time.Duration
	for b.Loop() {
		with = measure(ticks)
	}
	perTick := float64(probes) / float64(ticks*max(1, b.N))
	b.ReportMetric(ms(without), "backoff-cpu-ms/tick")
	b.ReportMetric(ms(with), "probed-cpu-ms/tick")
	b.ReportMetric(float64(s.ProbeSkips()-skips0)/float64(ticks*max(1, b.N)), "reads-saved/tick")
	b.ReportMetric(perTick, "probes/tick")
	b.Logf("steady tick: %.2f ms with the idle backoff alone, %.2f ms with the probe (%.0f probe answers a tick, %.0f reads saved a tick)",
		ms(without), ms(with), perTick, float64(s.ProbeSkips()-skips0)/float64(ticks*max(1, b.N)))
}
