package platform

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFDTables measures what counting descriptors over every distinct
// table of a process's threads (countAllFDs: the task list and a kcmp per
// thread, for processes with more than one thread) costs beside counting
// the leader's table alone (one stat), on a host of GUARDD_BENCH_PROCS
// spawned processes of which a tenth run two threads (the tests'
// pthread_exit offender, compiled with cc), as root:
//
//	GUARDD_BENCH_PROCS=5000 go test -run='^$' -bench=FDTables -benchtime=1x ./platform/
//
// Descriptors are counted once per fd_interval (10 s by default), so the
// per-tick figure is the full pass divided by 10.
func BenchmarkFDTables(b *testing.B) {
	n := 0
	if v := os.Getenv(benchProcsEnv); v != "" && os.Getuid() == 0 {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			b.Fatalf("%s=%q: want a count", benchProcsEnv, v)
		}
	}
	threaded := n / 10
	if threaded > 0 {
		cc, err := exec.LookPath("cc")
		if err != nil {
			b.Skip("no C compiler for the threaded processes")
		}
		exe := filepath.Join(b.TempDir(), "pthread_exit")
		if out, err := exec.Command(cc, "-O", "-o", exe, "../tests/testdata/pthread_exit.c", "-lpthread").CombinedOutput(); err != nil {
			b.Fatalf("cc: %v\n%s", err, out)
		}
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			b.Fatal(err)
		}
		defer devnull.Close()
		attr := &syscall.ProcAttr{Files: []uintptr{devnull.Fd(), devnull.Fd(), devnull.Fd()}, Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}}
		var pids []int
		b.Cleanup(func() {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, 0, nil)
			}
		})
		for range threaded {
			pid, err := syscall.ForkExec(exe, []string{"pthread_exit", "sleep", "0", "shared", "keep"}, attr)
			if err != nil {
				b.Fatal(err)
			}
			pids = append(pids, pid)
		}
		spawnIdle(b, n-threaded)
	}
	s, err := NewSampler(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// Two samples: the threaded processes have their second thread by then
	// (they start it at once; a process seen with one thread costs one stat).
	time.Sleep(200 * time.Millisecond)
	snap, err := s.Sample()
	if err != nil {
		b.Fatal(err)
	}
	multi := 0
	for _, p := range snap.Procs {
		if p.Threads > 1 {
			multi++
		}
	}
	var sc fdScratch
	pass := func(all bool) time.Duration {
		const rounds = 3
		c0 := cpuTime(b)
		for range rounds {
			for _, p := range snap.Procs {
				if all {
					countAllFDs(s.procFD, p.PID, p.Threads, p.LeaderExited, s.taskBuf, &sc)
				} else {
					fdCount(s.procFD, strconv.Itoa(int(p.PID)), s.taskBuf)
				}
			}
		}
		return (cpuTime(b) - c0) / rounds
	}
	var leader, tables time.Duration
	for b.Loop() {
		leader, tables = pass(false), pass(true)
	}
	b.ReportMetric(float64(len(snap.Procs)), "procs")
	b.ReportMetric(float64(multi), "multi-threaded")
	b.ReportMetric(ms(leader), "leader-only-cpu-ms/pass")
	b.ReportMetric(ms(tables), "all-tables-cpu-ms/pass")
	b.ReportMetric(ms(tables-leader)/10, "extra-cpu-ms/tick@10s")
	b.Logf("%d processes, %d with more than one thread: a descriptor pass costs %.2f ms CPU counting leaders' tables only, %.2f ms over every thread's table (+%.2f ms); at fd_interval 10s that is +%.3f ms per tick",
		len(snap.Procs), multi, ms(leader), ms(tables), ms(tables-leader), ms(tables-leader)/10)
}
