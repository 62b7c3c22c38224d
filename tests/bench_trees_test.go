//go:build linux

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// treesBenchEnv runs BenchmarkHostileTrees (it makes 1,300,000 inodes
// under /tmp and takes minutes):
//
//	GUARDD_BENCH_TREES=1 go test -run='^$' -bench=HostileTrees -benchtime=1x ./tests/
//
// GUARDD_BENCH_TREES=N makes N names in the wide directory instead of
// 1,000,000. The trees are made under /dev/shm (tmpfs, like the default
// policy's /dev/shm tree: a million files on this machine's shared ext4
// took longer than a quarter of an hour to make), or under
// GUARDD_BENCH_TREES_DIR.
const (
	treesBenchEnv    = "GUARDD_BENCH_TREES"
	treesBenchDirEnv = "GUARDD_BENCH_TREES_DIR"
)

// BenchmarkHostileTrees measures the peak RSS of one inode count and of
// one clean_tmp, each in a fresh process (tests/treemem), of two hostile
// trees: a million files in one directory, and 100,000 subdirectories of
// one directory with a file each. Beside them, in the same run and on the
// same tree, the peer `find TREE | wc -l`: its wall time and its peak
// RSS (GNU time). The cleanup removes everything (the files are a
// throwaway uid's and older than its older_than); most of its time is the
// filesystem's (ext4 frees a block per directory).
func BenchmarkHostileTrees(b *testing.B) {
	wide := 0
	switch v := os.Getenv(treesBenchEnv); v {
	case "":
		b.Skipf("set %s=1 to run (makes 1,300,000 inodes under /tmp)", treesBenchEnv)
	case "1":
		wide = 1000000
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want 1 or a number of names", treesBenchEnv, v)
		}
		wide = n
	}
	bin := filepath.Join(binDir, "treemem")
	if err := goBuild(bin, "./treemem"); err != nil {
		b.Fatal(err)
	}
	const uid = 61000 // a throwaway uid above the floor; no account needed
	base := os.Getenv(treesBenchDirEnv)
	if base == "" {
		base = "/dev/shm"
	}
	for b.Loop() {
		for _, shape := range []struct {
			name       string
			dirs, per  int // subdirectories of the top, files in each (0 dirs: files in the top)
			wantInodes int
		}{
			{"1,000,000 files in one directory", 0, wide, wide},
			{"100,000 subdirectories of one directory, a file in each", 100000, 1, 200000},
		} {
			t0 := time.Now()
			tree := hostileTree(b, base, shape.dirs, shape.per, uid)
			b.Logf("%s: made in %s under %s", shape.name, time.Since(t0).Round(time.Millisecond), base)
			count := runTreemem(b, bin, "count", tree)
			if !strings.Contains(count.out, fmt.Sprintf("entries=%d inodes=%d short=0 errors=0", shape.wantInodes, shape.wantInodes)) {
				b.Fatalf("%s: count %q, want %d entries and inodes", shape.name, count.out, shape.wantInodes)
			}
			// GNU time reports find's own peak (the ru_maxrss of a process
			// forked from time's small address space; from this one it
			// would carry over the test binary's).
			t0 = time.Now()
			cmd := exec.Command("sh", "-c", "/usr/bin/time -f %M -o "+tree+".rss find "+tree+" | wc -l")
			out, err := cmd.Output()
			findWall := time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); n != shape.wantInodes+1 {
				b.Fatalf("%s: find | wc -l says %d, want %d", shape.name, n, shape.wantInodes+1)
			}
			rss, err := os.ReadFile(tree + ".rss")
			os.Remove(tree + ".rss")
			findRSS, err2 := strconv.ParseInt(strings.TrimSpace(string(rss)), 10, 64)
			if err != nil || err2 != nil {
				b.Fatalf("time(1): %q %v %v", rss, err, err2)
			}
			clean := runTreemem(b, bin, "clean", strconv.Itoa(uid), "1ms", tree)
			if !strings.Contains(clean.out, fmt.Sprintf("outcome=done files=%d dirs=%d errors=0", shape.wantInodes-shape.dirs, shape.dirs)) {
				b.Fatalf("%s: clean %q", shape.name, clean.out)
			}
			mib := func(kib int64) float64 { return float64(kib) / 1024 }
			b.Logf("%s: count %.1f MiB peak RSS (Go runtime alone %.1f), %d ms; clean_tmp %.1f MiB (%.1f), %d ms; find | wc -l %.1f MiB peak RSS, %d ms: count %.2fx find's wall time",
				shape.name, mib(count.rss), mib(count.base), count.ms, mib(clean.rss), mib(clean.base), clean.ms,
				mib(findRSS), findWall.Milliseconds(), float64(count.ms)/float64(findWall.Milliseconds()))
			short := "wide"
			if shape.dirs > 0 {
				short = "subdirs"
			}
			b.ReportMetric(mib(count.rss), short+"-count-peak-MiB")
			b.ReportMetric(mib(clean.rss), short+"-clean-peak-MiB")
			b.ReportMetric(mib(findRSS), short+"-find-peak-MiB")
			b.ReportMetric(float64(count.ms), short+"-count-ms")
			b.ReportMetric(float64(findWall.Milliseconds()), short+"-find-ms")
		}
	}
}

// hostileTree makes a tree under base: dirs subdirectories of its top
// with per files each, or per files in the top when dirs is 0, all owned
// by uid; removed afterwards.
func hostileTree(b *testing.B, base string, dirs, per int, uid int) string {
	b.Helper()
	top, err := os.MkdirTemp(base, "guardd-bench-trees-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(top) })
	os.Chmod(top, 0o1777)
	files := func(dir string) {
		dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(dfd)
		for i := range per {
			fd, err := unix.Openat(dfd, "sess_"+strconv.Itoa(i), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			unix.Fchown(fd, uid, uid)
			unix.Close(fd)
		}
	}
	if dirs == 0 {
		files(top)
		return top
	}
	for i := range dirs {
		d := filepath.Join(top, "d"+strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		os.Chown(d, uid, uid)
		files(d)
	}
	return top
}

type treememRun struct {
	out           string
	ms, rss, base int64
}

// runTreemem runs tests/treemem and reads its figures.
func runTreemem(b *testing.B, bin string, args ...string) treememRun {
	b.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("treemem %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r := treememRun{out: strings.TrimSpace(string(out))}
	for _, f := range strings.Fields(r.out) {
		k, v, _ := strings.Cut(f, "=")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "ms":
			r.ms = n
		case "maxrss_kib":
			r.rss = n
		case "base_kib":
			r.base = n
		}
	}
	return r
}
