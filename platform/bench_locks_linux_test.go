//go:build linux

package platform

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkInodeWalk counts a temp tree of 100,000 files owned by five
// uids (GUARDD_BENCH_WALK_FILES changes the number) with InodeCounter,
// beside the peer in the same run:
//
//	find TREE -printf '%U\n' | sort | uniq -c
//
// and reports both in wall and CPU time (the peer's CPU is its processes'
// user+system time), with their ratio, per 100,000 files:
//
//	go test -run '^$' -bench InodeWalk -benchtime 5x ./platform/
func BenchmarkInodeWalk(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("GUARDD_BENCH_WALK_FILES")); err == nil && v > 0 {
		n = v
	}
	tree := walkTree(b, n)
	trees, errs := OpenTrees([]string{tree})
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	defer trees[0].Close()
	c := &InodeCounter{}
	var want map[uint32]int64
	var ourWall, ourCPU, peerWall, peerCPU time.Duration
	b.ResetTimer()
	for b.Loop() {
		cpu0, t0 := cpuTime(b), time.Now()
		res := c.Count(trees)
		ourWall += time.Since(t0)
		ourCPU += cpuTime(b) - cpu0

		ch0, t1 := childCPU(b), time.Now()
		out, err := exec.Command("sh", "-c", "find "+tree+" -printf '%U\\n' | sort | uniq -c").Output()
		peerWall += time.Since(t1)
		peerCPU += childCPU(b) - ch0
		if err != nil {
			b.Fatal(err)
		}
		if want == nil {
			want = parseUniq(b, out)
			want[uint32(os.Geteuid())]-- // find lists the top directory too
			if want[uint32(os.Geteuid())] == 0 {
				delete(want, uint32(os.Geteuid()))
			}
			if fmt.Sprint(want) != fmt.Sprint(res.ByUID) {
				b.Fatalf("guardd counts %v, find counts %v", res.ByUID, want)
			}
		}
	}
	b.StopTimer()
	per := float64(b.N) * float64(n) / 100000
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / per }
	b.ReportMetric(ms(ourWall), "walk-ms/100k")
	b.ReportMetric(ms(ourCPU), "walk-cpu-ms/100k")
	b.ReportMetric(ms(peerWall), "find-ms/100k")
	b.ReportMetric(ms(peerCPU), "find-cpu-ms/100k")
	b.ReportMetric(float64(peerWall)/float64(ourWall), "wall-ratio")
	b.ReportMetric(float64(peerCPU)/float64(ourCPU), "cpu-ratio")
	b.Logf("%d files: guardd %.1f ms wall, %.1f ms CPU; find|sort|uniq %.1f ms wall, %.1f ms CPU: %.1fx faster, %.1fx less CPU",
		n, ms(ourWall)*float64(n)/100000, ms(ourCPU)*float64(n)/100000, ms(peerWall)*float64(n)/100000, ms(peerCPU)*float64(n)/100000,
		float64(peerWall)/float64(ourWall), float64(peerCPU)/float64(ourCPU))
}

// walkTree makes a tree of n files in directories of 1,000 under /tmp (a
// real filesystem, like the temp trees guardd counts), owned by five uids
// when run as root, removed afterwards.
func walkTree(b *testing.B, n int) string {
	b.Helper()
	dir, err := os.MkdirTemp("/tmp", "guardd-bench-walk-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	root := os.Geteuid() == 0
	for i := 0; i < n; i++ {
		sub := filepath.Join(dir, "d"+strconv.Itoa(i/1000))
		if i%1000 == 0 {
			if err := os.Mkdir(sub, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		p := filepath.Join(sub, "sess_"+strconv.Itoa(i))
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		if root {
			unix.Fchown(fd, 61000+i%5, 61000+i%5)
		}
		unix.Close(fd)
	}
	return dir
}

func parseUniq(b *testing.B, out []byte) map[uint32]int64 {
	m := map[uint32]int64{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		n, err1 := strconv.ParseInt(f[0], 10, 64)
		uid, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			b.Fatalf("uniq: %q", sc.Text())
		}
		m[uint32(uid)] = n
	}
	return m
}

func childCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLocks1000 reads /proc/locks with 1,000 locks held (500 flock,
// 500 POSIX, taken by this process) and 10 processes waiting, and credits
// them to every process of the host (LockObserver.Observe on a real
// sample), beside lslocks(8) in the same run, which reads the same file
// and resolves each lock's path:
//
//	go test -run '^$' -bench Locks1000 ./platform/
func BenchmarkLocks1000(b *testing.B) {
	dir := b.TempDir()
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i := range 1000 {
		f, err := os.Create(filepath.Join(dir, "l"+strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, f)
		if i%2 == 0 {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		} else {
			lk := unix.Flock_t{Type: unix.F_WRLCK}
			err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if flock, err := exec.LookPath("flock"); err == nil {
		for i := range 10 {
			w := exec.Command(flock, filepath.Join(dir, "l"+strconv.Itoa(2*i)), "true")
			if err := w.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { w.Process.Kill(); w.Wait() }()
		}
	}
	s, err := NewSampler(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	snap, err := s.Sample()
	if err != nil {
		b.Fatal(err)
	}
	o := NewLockObserver()
	o.Observe(snap) // first sight: the flock holders' descriptors are checked once
	if n := len(o.Facts()); n < 1000 {
		b.Fatalf("%d locks seen, want 1,000 or more", n)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := o.Observe(snap); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	per := b.Elapsed() / time.Duration(b.N)
	// The peer, a few times.
	const runs = 5
	var peer time.Duration
	if _, err := exec.LookPath("lslocks"); err == nil {
		for range runs {
			c0 := childCPU(b)
			if err := exec.Command("lslocks", "-n", "-o", "COMMAND,PID,TYPE,MODE,PATH").Run(); err != nil {
				b.Fatal(err)
			}
			peer += childCPU(b) - c0
		}
		peer /= runs
		b.ReportMetric(float64(peer)/float64(time.Millisecond), "lslocks-cpu-ms")
		b.ReportMetric(float64(peer)/float64(per), "ratio")
	}
	b.Logf("%d locks: guardd %.3f ms per read (parse + credit to %d processes); lslocks %.1f ms CPU", len(o.Facts()), float64(per)/1e6, len(snap.Procs), float64(peer)/1e6)
}
