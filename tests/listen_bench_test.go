//go:build linux

package tests

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkListenKill: time from a customer's listen() to its process
// being gone, with guardd in kill mode at a 1 s tick (median and worst of
// 20), beside the peer measured the same way in the same run: the loop an
// admin writes without guardd, `ss -Htlnp` every second and kill(1) of
// what it lists.
//
//	go test -run '^$' -bench ListenKill -benchtime 1x ./tests/
func BenchmarkListenKill(b *testing.B) {
	const runs = 20
	const interval = time.Second
	u := NewUser(b)
	g := StartGuarddConfig(b, Config{Interval: interval.String(), Body: Class(u) + listenBlock("kill")})
	for b.Loop() {
		ours := killLatencies(b, u, runs, interval)
		g.Stop(b)
		stop := ssWatchdog(b, u, interval)
		peer := killLatencies(b, u, runs, interval)
		stop()
		med, worst := ours[len(ours)/2], ours[len(ours)-1]
		pmed, pworst := peer[len(peer)/2], peer[len(peer)-1]
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(med), "median-ms")
		b.ReportMetric(ms(worst), "worst-ms")
		b.ReportMetric(float64(worst)/float64(interval), "worst-ticks")
		b.ReportMetric(ms(pmed), "ss-loop-median-ms")
		b.ReportMetric(ms(pworst), "ss-loop-worst-ms")
		b.ReportMetric(float64(pmed)/float64(med), "x-faster-than-ss-loop")
	}
}

// killLatencies starts n listeners one after the other and returns, sorted,
// how long each lived after its listen(): from the CLOCK_MONOTONIC time it
// printed to the moment it was reaped. Each starts at a random point of
// the tick: one started right after the previous kill would always listen
// just after a tick and wait for the whole next one.
func killLatencies(b *testing.B, u *User, n int, tick time.Duration) []time.Duration {
	var out []time.Duration
	for range n {
		time.Sleep(rand.N(tick)) // the phase, not a synchronization
		port := testPort(b)
		o := listenLater(b, u, "tcp", "0.0.0.0", port)
		select {
		case <-o.Done():
		case <-time.After(Deadline):
			b.Fatalf("listener on %d still alive after %s", port, Deadline)
		}
		var now unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
		var at int64
		for _, line := range o.Output() {
			if rest, ok := strings.CutPrefix(line, "listening-at "); ok {
				at, _ = strconv.ParseInt(rest, 10, 64)
			}
		}
		if at == 0 {
			b.Fatalf("listener on %d: no listening-at line in %q", port, o.Output())
		}
		out = append(out, time.Duration(now.Nano()-at))
	}
	slices.Sort(out)
	return out
}

var ssPID = regexp.MustCompile(`pid=(\d+)`)

// ssWatchdog runs the peer: every interval, list listening sockets with
// ss(8) and SIGKILL their processes, but only those of u (this is a test:
// nobody else's processes are touched). It returns a function that stops
// it.
func ssWatchdog(b *testing.B, u *User, interval time.Duration) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			out, err := exec.Command("ss", "-Htlnp").Output()
			if err != nil {
				continue
			}
			for _, m := range ssPID.FindAllStringSubmatch(string(out), -1) {
				pid, _ := strconv.Atoi(m[1])
				fd, err := unix.PidfdOpen(pid, 0)
				if err != nil {
					continue
				}
				if uid, ok := realUID(pid); ok && uid == u.UID {
					unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
				}
				unix.Close(fd)
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// BenchmarkBindHook: what the bind hook adds to bind(2). A customer's
// process binds an allowed port 20,000 times (closing each socket) with no
// hook attached, then with guardd's hook: the port allowed by the first
// entry of its allow list, then by the last of 64 (the longest loop the
// program runs). A refused bind, which ends before the kernel binds, is
// measured too.
//
//	go test -run '^$' -bench BindHook -benchtime 1x ./tests/
func BenchmarkBindHook(b *testing.B) {
	const binds = 20000
	u := NewUser(b)
	port := testPort(b)
	bind := func(addr string, port int) (ns float64, errs int) {
		o := StartOffender(b, u, "bindloop", strconv.Itoa(binds), addr, strconv.Itoa(port))
		var nsLine, errLine string
		for _, line := range o.Output() {
			if strings.HasPrefix(line, "ns-per-bind ") {
				nsLine = line
			}
			if strings.HasPrefix(line, "errors ") {
				errLine = line
			}
		}
		v, err := strconv.ParseFloat(strings.TrimPrefix(nsLine, "ns-per-bind "), 64)
		if err != nil {
			b.Fatalf("bindloop said %q", o.Output())
		}
		errs, _ = strconv.Atoi(strings.TrimPrefix(errLine, "errors "))
		o.Kill()
		<-o.Done()
		return v, errs
	}
	measure := func(addr string, port int, wantErrs bool) float64 {
		ns, errs := bind(addr, port)
		if (errs == binds) != wantErrs {
			b.Fatalf("bind %s:%d: %d of %d failed", addr, port, errs, binds)
		}
		return ns
	}
	for b.Loop() {
		// Rounds alternate without and with the hook, so that the load of a
		// shared host weighs on both alike; medians over the rounds.
		var without, withFirst, withLast, refused []float64
		var allow []string
		for i := range 63 {
			allow = append(allow, fmt.Sprintf("10.0.0.%d:%d", i+1, port))
		}
		allow = append(allow, "127.0.0.1:"+strconv.Itoa(port))
		for range 5 {
			without = append(without, measure("127.0.0.1", port, false))

			first := StartGuardd(b, Class(u)+listenBlock("bind", "127.0.0.1:"+strconv.Itoa(port)))
			waitHook(b, first)
			withFirst = append(withFirst, measure("127.0.0.1", port, false))
			refused = append(refused, measure("127.0.0.1", port+1, true))
			first.Stop(b)

			last := StartGuardd(b, Class(u)+listenBlock("bind", allow...))
			waitHook(b, last)
			withLast = append(withLast, measure("127.0.0.1", port, false))
			last.Stop(b)
		}
		med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
		mWithout, mFirst, mLast, mRefused := med(without), med(withFirst), med(withLast), med(refused)
		b.ReportMetric(mWithout, "ns/bind-without-hook")
		b.ReportMetric(mFirst, "ns/bind-allowed-1st")
		b.ReportMetric(mLast, "ns/bind-allowed-64th")
		b.ReportMetric(mRefused, "ns/bind-refused")
		b.ReportMetric(mFirst-mWithout, "ns-added-1st")
		b.ReportMetric(mLast-mWithout, "ns-added-64th")
		b.ReportMetric(mLast/mWithout, "ratio-64th-to-without")
	}
}
