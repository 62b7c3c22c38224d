package platform

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkListenerDump: one sock_diag dump of a host with 1,000 extra
// listening sockets (guardd's per-tick cost), beside the peers measured in
// the same run: ss(8) listing the same sockets with owner and inode
// (`ss -Htulne`, fork and exec included: that is what a script pays), and
// reading /proc/net/{tcp,tcp6,udp,udp6} the way procfs parsers do.
//
//	go test -run '^$' -bench ListenerDump -benchtime 2000x ./platform/
func BenchmarkListenerDump(b *testing.B) {
	const extra = 1000
	for range extra {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			b.Fatal(err)
		}
		if err := unix.Listen(fd, 1); err != nil {
			b.Fatal(err)
		}
	}
	d, err := NewListenerDumper()
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var ls []Listener
	if ls, err = d.Dump(ls); err != nil || len(ls) < extra {
		b.Fatalf("dumped %d listeners (%v), want at least %d", len(ls), err, extra)
	}
	seen := len(ls)

	b.ResetTimer()
	cpu0 := cpuTime(b)
	start := time.Now()
	for b.Loop() {
		ls, err = d.Dump(ls[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	ours := time.Since(start) / time.Duration(b.N)
	oursCPU := (cpuTime(b) - cpu0) / time.Duration(b.N)
	b.StopTimer()

	// Peers: a fixed number of runs each, whatever b.N is.
	const peerRuns = 20
	var ssCPU, ssWall time.Duration
	ssSeen := 0
	for range peerRuns {
		t0 := time.Now()
		cmd := exec.Command("ss", "-Htulne")
		out, err := cmd.Output()
		if err != nil {
			b.Skipf("ss: %v", err)
		}
		ssWall += time.Since(t0)
		ssCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		ssSeen = bytes.Count(out, []byte("\n"))
	}
	var procWall, procCPU time.Duration
	procSeen := 0
	for range peerRuns {
		c0, t0 := cpuTime(b), time.Now()
		procSeen = readProcNet(b)
		procWall += time.Since(t0)
		procCPU += cpuTime(b) - c0
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(float64(seen), "listeners")
	b.ReportMetric(us(ours), "us/dump")
	b.ReportMetric(us(oursCPU), "cpu-us/dump")
	b.ReportMetric(float64(ssSeen), "ss-listeners")
	b.ReportMetric(us(ssWall/peerRuns), "ss-us/run")
	b.ReportMetric(us(ssCPU/peerRuns), "ss-cpu-us/run")
	b.ReportMetric(float64(procSeen), "procnet-listeners")
	b.ReportMetric(us(procWall/peerRuns), "procnet-us/read")
	b.ReportMetric(float64(ssWall/peerRuns)/float64(ours), "x-faster-than-ss")
	b.ReportMetric(float64(procWall/peerRuns)/float64(ours), "x-faster-than-procnet")
}

// readProcNet parses the four /proc/net socket tables, keeping listening
// TCP and unconnected UDP sockets with uid and inode, and returns how many
// it found.
func readProcNet(b *testing.B) int {
	n := 0
	for _, f := range []struct {
		path, state string
	}{{"/proc/net/tcp", "0A"}, {"/proc/net/tcp6", "0A"}, {"/proc/net/udp", "07"}, {"/proc/net/udp6", "07"}} {
		file, err := os.Open(f.path)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(file)
		sc.Scan() // header
		for sc.Scan() {
			fields := bytes.Fields(sc.Bytes())
			if len(fields) < 10 || string(fields[3]) != f.state {
				continue
			}
			uid, err1 := strconv.ParseUint(string(fields[7]), 10, 32)
			inode, err2 := strconv.ParseUint(string(fields[9]), 10, 64)
			if err1 == nil && err2 == nil && inode+uid > 0 {
				n++
			}
		}
		file.Close()
	}
	return n
}

// BenchmarkSocketScan: one Scan of the test process, whose threads share
// one table (the common case: each thread is compared with kcmp, no
// other table is read).
//
//	go test -run '^$' -bench SocketScan -count 1 ./platform/
func BenchmarkSocketScan(b *testing.B) {
	s := NewSocketScanner()
	self := int32(os.Getpid())
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Scan(self, func(uint64) bool { return true }); err != nil {
			b.Fatal(err)
		}
	}
	ents, _ := os.ReadDir("/proc/self/task")
	b.ReportMetric(float64(len(ents)), "threads")
}
