//go:build linux

package platform

import (
	"os"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

// BenchmarkReadProcess: the fresh read of one process that the
// enforcement chokepoint makes before every action (identity, uid, exe,
// command line, descriptors), beside prometheus/procfs reading the same
// facts in the same run:
//
//	go test -run '^$' -bench ReadProcess ./platform/
func BenchmarkReadProcess(b *testing.B) {
	pid := os.Getpid()
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		b.Fatal(err)
	}
	peer := func() {
		p, err := fs.Proc(pid)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Stat(); err != nil {
			b.Fatal(err)
		}
		if _, err := p.NewStatus(); err != nil {
			b.Fatal(err)
		}
		p.Executable()
		p.CmdLine()
		p.FileDescriptorsLen()
	}
	const peerRuns = 2000
	start := time.Now()
	for range peerRuns {
		peer()
	}
	peerNs := float64(time.Since(start).Nanoseconds()) / peerRuns
	b.ResetTimer()
	for b.Loop() {
		if _, err := ReadProcess(int32(pid), nil); err != nil {
			b.Fatal(err)
		}
	}
	ours := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(peerNs/1000, "procfs-µs")
	b.ReportMetric(peerNs/ours, "x-faster")
}
