//go:build linux

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// forkBenchEnv turns on BenchmarkForkStorm (it runs fork bombs):
//
//	GUARDD_BENCH_FORKSTORM=1 go test -run='^$' -bench=ForkStorm -benchtime=1x -timeout=30m ./tests/
const forkBenchEnv = "GUARDD_BENCH_FORKSTORM"

// pidsCgroup is a cgroup v1 pids hierarchy; its pids.current counts a
// group's tasks exactly, zombies included until they are reaped, so it
// gives the peak and the moment the storm is fully gone.
const pidsRoot = "/sys/fs/cgroup/pids"

// BenchmarkForkStorm runs the bash fork bomb ten times against guardd on
// the default policy's fork-storm rule and cap, and once with only the
// kernel's limit (ulimit -u 3000, no guardd), and reports peak processes
// and the time from the first fork to zero processes; then guardd's CPU
// while the host forks short processes as fast as two spawners can (the
// issue asks for 2,000 a second), beside its CPU on an idle host.
func BenchmarkForkStorm(b *testing.B) {
	if os.Getenv(forkBenchEnv) == "" {
		b.Skipf("set %s=1 to run fork bombs", forkBenchEnv)
	}
	if _, err := os.Stat(filepath.Join(pidsRoot, "cgroup.procs")); err != nil {
		b.Skipf("no cgroup v1 pids hierarchy at %s: %v", pidsRoot, err)
	}
	for b.Loop() {
		const runs = 10
		var peaks []int
		var zeros, reacts []time.Duration
		for i := range runs {
			peak, zero, react := bombRun(b, i, true)
			peaks, zeros, reacts = append(peaks, peak), append(zeros, zero), append(reacts, react)
		}
		basePeak, baseZero, _ := bombRun(b, runs, false)
		slices.Sort(peaks)
		slices.Sort(zeros)
		slices.Sort(reacts)
		b.ReportMetric(float64(peaks[runs/2]), "median-peak-procs")
		b.ReportMetric(float64(peaks[runs-1]), "worst-peak-procs")
		b.ReportMetric(float64(zeros[runs/2].Milliseconds()), "median-ms-to-zero")
		b.ReportMetric(float64(zeros[runs-1].Milliseconds()), "worst-ms-to-zero")
		b.ReportMetric(float64(reacts[runs/2].Milliseconds()), "median-ms-decision-to-zero")
		b.ReportMetric(float64(reacts[runs-1].Milliseconds()), "worst-ms-decision-to-zero")
		b.ReportMetric(float64(basePeak), "kernel-limit-only-peak-procs")
		b.Logf("guardd, %d runs: peak processes median %d worst %d; first fork to zero processes median %s worst %s; "+
			"kill_user decided to zero processes median %s worst %s (all: %v / %v / %v)",
			runs, peaks[runs/2], peaks[runs-1], zeros[runs/2], zeros[runs-1], reacts[runs/2], reacts[runs-1], peaks, zeros, reacts)
		if baseZero < 0 {
			b.Logf("kernel limit only (ulimit -u 3000, no guardd): peak %d processes, still %s later: the bomb lives until someone kills it", basePeak, -baseZero)
		}

		busy, idle, rate := forkLoadCPU(b)
		b.ReportMetric(busy, "cpu-ms/s-forking")
		b.ReportMetric(idle, "cpu-ms/s-idle")
		b.ReportMetric(rate, "forks/s")
		b.Logf("guardd CPU while the host forks %.0f short processes a second: %.1f ms/s (idle host: %.1f ms/s)", rate, busy, idle)
	}
}

// bombRun runs one bash fork bomb in a fresh pids cgroup and returns the
// peak task count, the time from the first fork to zero tasks, and from
// guardd's kill_user decision to zero tasks. Without guardd it returns the
// peak and minus the time it watched the bomb live.
func bombRun(b *testing.B, i int, withGuardd bool) (int, time.Duration, time.Duration) {
	u := NewUser(b)
	dir := ExecDir(b)
	trigger := filepath.Join(dir, "go")
	var g *Guardd
	if withGuardd {
		g = StartGuarddConfig(b, Config{Interval: "1s", Body: Class(u) + defaultStormRules(b)})
	}
	cg := filepath.Join(pidsRoot, fmt.Sprintf("gdt-bench-%d-%d", os.Getpid(), i))
	if err := os.Mkdir(cg, 0o755); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.Remove(cg) })
	bomb := StartOffenderSpec(b, u, OffenderSpec{Reaped: true, Args: []string{"-nproc", "3000", "exec", "--", "/bin/bash", "-c",
		fmt.Sprintf("while [ ! -e %s ]; do sleep 0.02; done; b(){ b|b& }; b; sleep 1000", trigger)}})
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(bomb.PID)), 0); err != nil {
		b.Fatal(err)
	}
	if withGuardd {
		waitCapped(b, bomb.PID, 400)
	}
	current := func() int {
		raw, err := os.ReadFile(filepath.Join(cg, "pids.current"))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
		return n
	}
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	peak, first := 0, time.Time{}
	watch := 10 * time.Second
	end := time.Now().Add(watch + 20*time.Second)
	for time.Now().Before(end) {
		n := current()
		peak = max(peak, n)
		if n > 1 && first.IsZero() {
			first = time.Now()
		}
		if !first.IsZero() && n == 0 {
			zero := time.Now()
			if g == nil {
				return peak, zero.Sub(first), 0
			}
			ev := g.WaitAudit(b, Action("fork-storm", "kill_user", "done", 0), Deadline)
			g.Stop(b)
			return peak, zero.Sub(first), zero.Sub(ev.Time)
		}
		if !withGuardd && !first.IsZero() && time.Since(first) > watch {
			killUID(u.UID, CleanDeadline)
			return peak, -watch, 0
		}
		time.Sleep(500 * time.Microsecond)
	}
	b.Fatalf("run %d: the bomb still has %d processes after %s", i, current(), watch+20*time.Second)
	return 0, 0, 0
}

// forkLoadCPU measures guardd's CPU per second of wall time for 10 s while
// two spawners fork+exec /bin/true as a test user as fast as they can, and
// for 10 s on an idle host; it returns both and the fork rate reached.
func forkLoadCPU(b *testing.B) (busy, idle, rate float64) {
	u := NewUser(b)
	g := StartGuarddConfig(b, Config{Interval: "1s", Body: Class(u) + defaultStormRules(b), Flags: profileFlags("")})
	pid := g.Cmd.Process.Pid
	measure := func(d time.Duration, load bool) (float64, int) {
		stop := make(chan struct{})
		done := make(chan int, 2)
		if load {
			attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}}
			for range 2 {
				go func() {
					n := 0
					for {
						select {
						case <-stop:
							done <- n
							return
						default:
						}
						if p, err := syscall.ForkExec("/bin/true", []string{"true"}, attr); err == nil {
							var ws syscall.WaitStatus
							syscall.Wait4(p, &ws, 0, nil)
							n++
						}
					}
				}()
			}
		}
		c0, t0 := procCPU(b, pid), time.Now()
		time.Sleep(d) // a measurement window, not synchronisation
		c1, t1 := procCPU(b, pid), time.Now()
		close(stop)
		forks := 0
		if load {
			forks = <-done + <-done
		}
		return float64(c1-c0) / float64(time.Millisecond) / t1.Sub(t0).Seconds(), forks
	}
	idle, _ = measure(10*time.Second, false)
	busy, forks := measure(10*time.Second, true)
	return busy, idle, float64(forks) / 10
}
