//go:build linux

package tests

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// rssProcsEnv sets how many idle processes BenchmarkDaemonRSS puts on the
// host before it measures the real daemon:
//
//	GUARDD_BENCH_RSS_PROCS=30000 go test -run='^$' -bench=DaemonRSS -benchtime=1x ./tests/
const rssProcsEnv = "GUARDD_BENCH_RSS_PROCS"

// BenchmarkDaemonRSS runs the real guardd binary, on the default policy's
// rules with its class set to a throwaway user, on a host with N extra
// processes of that user (DESIGN.md §6: ≤ 40 MiB RSS with 30,000), and
// reports its resident memory and CPU per tick beside ps(1)'s peak RSS and
// CPU for one scan of the same host.
func BenchmarkDaemonRSS(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv(rssProcsEnv))
	if n <= 0 {
		b.Skipf("set %s=N to run (spawns N processes)", rssProcsEnv)
	}
	u := NewUser(b)
	raisePIDMax(b, n+10000)
	spawnSleepers(b, u, n)

	// The default rules, for this user only.
	body := strings.Replace(string(policy.DefaultSource), `uids = ["1000-59999"]`, `users = ["`+u.Name+`"]`, 1)
	body = body[strings.Index(body, `class "customers"`):] // our own guardd block comes first
	g := StartGuarddConfig(b, Config{Interval: "1s", Body: body, Flags: profileFlags("")})
	pid := g.Cmd.Process.Pid

	b.ResetTimer()
	for b.Loop() {
		// Warm up: discovery (seconds of CPU for 30,000 processes), then
		// the idle backoff reaching its steady state (1+2+4+8 ticks).
		time.Sleep(30 * time.Second)
		cpu0, t0 := procCPU(b, pid), time.Now()
		time.Sleep(20 * time.Second) // measure 20 ticks of the real loop
		cpu1, t1 := procCPU(b, pid), time.Now()
		ticks := t1.Sub(t0).Seconds()
		rss, hwm := procMem(b, pid, "VmRSS:"), procMem(b, pid, "VmHWM:")
		// Anonymous memory is guardd's own (heap, stacks); file pages are
		// its binary's code and read-only data as far as they were
		// touched, shared and reclaimable page cache.
		anon, file := procMem(b, pid, "RssAnon:"), procMem(b, pid, "RssFile:")
		b.ReportMetric(anon, "rss-anon-MiB")
		b.ReportMetric(file, "rss-file-MiB")
		psRSS, psCPU := psPeer(b)
		seen := countProcs(b)
		b.ReportMetric(float64(seen), "procs")
		b.ReportMetric(rss, "rss-MiB")
		b.ReportMetric(hwm, "peak-rss-MiB")
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Millisecond)/ticks, "cpu-ms/tick")
		b.ReportMetric(psRSS, "ps-peak-rss-MiB")
		b.ReportMetric(float64(psCPU)/float64(time.Millisecond), "ps-cpu-ms/scan")
		b.Logf("%d processes: guardd RSS %.1f MiB (peak %.1f), %.2f ms CPU per 1s tick; ps peak RSS %.1f MiB, %.1f ms CPU per scan",
			seen, rss, hwm, float64(cpu1-cpu0)/float64(time.Millisecond)/ticks, psRSS, float64(psCPU)/float64(time.Millisecond))
	}
}

// profileFlags asks a benchmark's guardd for Go profiles, where the
// environment says: GUARDD_BENCH_CPUPROFILE=FILE, a CPU profile of the
// whole run; GUARDD_BENCH_MEMPROFILE=FILE, a heap profile when the
// benchmark stops it (go tool pprof -sample_index=inuse_space). A
// benchmark that runs several daemons names each (FILE.name).
func profileFlags(name string) []string {
	var flags []string
	for env, flag := range map[string]string{"GUARDD_BENCH_CPUPROFILE": "--cpuprofile", "GUARDD_BENCH_MEMPROFILE": "--memprofile"} {
		if f := os.Getenv(env); f != "" {
			if name != "" {
				f += "." + name
			}
			flags = append(flags, flag, f)
		}
	}
	return flags
}

func raisePIDMax(b *testing.B, want int) {
	const path = "/proc/sys/kernel/pid_max"
	old, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	cur, _ := strconv.Atoi(strings.TrimSpace(string(old)))
	if cur >= want {
		return
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(want)), 0); err != nil {
		b.Fatalf("raise pid_max to %d: %v", want, err)
	}
	b.Cleanup(func() { os.WriteFile(path, old, 0) })
}

// spawnSleepers starts n `sleep` processes as u, from two goroutines
// (fork+exec is the slow part), and kills and reaps them when the
// benchmark ends (before NewUser's cleanup, which is too slow for tens of
// thousands).
func spawnSleepers(b *testing.B, u *User, n int) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		b.Fatal(err)
	}
	attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID},
		Pdeathsig:  syscall.SIGKILL,
		Setpgid:    true,
	}}
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex // guards pids and firstErr
	var pids []int
	var firstErr error
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
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 2 {
				pid, err := syscall.ForkExec(sleep, []string{"sleep", "7200"}, attr)
				mu.Lock()
				if err != nil {
					firstErr = err
				} else {
					pids = append(pids, pid)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("spawning sleepers: %v", firstErr)
	}
	b.Logf("spawned %d processes as %s in %s", n, u.Name, time.Since(start).Round(time.Millisecond))
}

// procCPU is the CPU time (user+system) pid used so far.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	var st platform.Stat
	if err := platform.ParseStat(raw, &st); err != nil {
		b.Fatal(err)
	}
	return time.Duration(st.UTime+st.STime) * 10 * time.Millisecond
}

// procMem reads a "VmXXX:  N kB" line of /proc/PID/status, in MiB.
func procMem(b *testing.B, pid int, field string) float64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// psPeer runs `ps -eo pid,uid,pcpu,rss,etimes,stat,comm` once: its peak RSS
// in MiB and its CPU time.
func psPeer(b *testing.B) (float64, time.Duration) {
	cmd := exec.Command("ps", "-eo", "pid,uid,pcpu,rss,etimes,stat,comm")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		b.Fatal(err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return float64(ru.Maxrss) / 1024, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

func countProcs(b *testing.B) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}
