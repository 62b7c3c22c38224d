//go:build linux

package enforce_test

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

func openTrafficHook(t testing.TB) *enforce.TrafficHook {
	t.Helper()
	root, err := platform.FindCgroup2Root()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	h, err := enforce.OpenTrafficHook(root)
	if err != nil {
		t.Fatalf("OpenTrafficHook: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestTrafficHookCounts: datagrams a customer sends are counted under its
// uid, exactly (one 1-byte UDP datagram is 29 bytes of IPv4, 49 of IPv6),
// and a control user's are not counted for it; root's are not counted.
func TestTrafficHookCounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	other := newTestUser(t)
	bin := helperBinary(t)
	h := openTrafficHook(t)
	if err := h.SetMinUID(1000); err != nil {
		t.Fatal(err)
	}
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sink4, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink4.Close()
	p6 := strconv.Itoa(sink.LocalAddr().(*net.UDPAddr).Port)
	p4 := strconv.Itoa(sink4.LocalAddr().(*net.UDPAddr).Port)

	before := map[uint32]enforce.TrafficCounts{}
	if err := h.Read(before); err != nil {
		t.Fatal(err)
	}
	runConnects(t, u, bin, "udp 127.0.0.1 "+p4+" 300", "udp ::1 "+p6+" 200")
	runConnects(t, other, bin, "udp 127.0.0.1 "+p4+" 50")
	// Root sends too: never counted.
	c, err := net.DialUDP("udp4", nil, sink4.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x"))
	c.Close()

	after := map[uint32]enforce.TrafficCounts{}
	if err := h.Read(after); err != nil {
		t.Fatal(err)
	}
	got, ctl := after[u.uid], after[other.uid]
	b := before[u.uid]
	if n := got.TxPackets - b.TxPackets; n != 500 {
		t.Errorf("customer: %d packets out counted, sent 500", n)
	}
	if n := got.TxBytes - b.TxBytes; n != 300*29+200*49 {
		t.Errorf("customer: %d bytes out counted, sent %d", n, 300*29+200*49)
	}
	if got.RxPackets != b.RxPackets {
		t.Errorf("customer: %d packets in counted, received none (the sinks are root's)", got.RxPackets-b.RxPackets)
	}
	if n := ctl.TxPackets - before[other.uid].TxPackets; n != 50 {
		t.Errorf("control: %d packets out counted, sent 50", n)
	}
	if _, ok := after[0]; ok {
		t.Errorf("root counted: %+v", after[0])
	}
}

// udpSelfLoop times N sends of SIZE-byte datagrams from a loopback UDP
// socket to itself (both ends the caller's: egress and ingress programs
// both count) and prints ns per send.
func udpSelfLoop(spec string) string {
	f := strings.Fields(spec)
	if len(f) != 2 {
		return "bad spec"
	}
	n, _ := strconv.Atoi(f[0])
	size, _ := strconv.Atoi(f[1])
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err.Error()
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err.Error()
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return err.Error()
	}
	if err := unix.Connect(fd, sa); err != nil {
		return err.Error()
	}
	buf := make([]byte, size)
	drain := make([]byte, size)
	start := time.Now()
	for i := range n {
		unix.Write(fd, buf)
		if i%64 == 63 { // keep the receive queue from filling up
			for {
				if _, _, err := unix.Recvfrom(fd, drain, unix.MSG_DONTWAIT); err != nil {
					break
				}
			}
		}
	}
	return strconv.FormatFloat(float64(time.Since(start).Nanoseconds())/float64(n), 'f', 1, 64)
}

// BenchmarkTrafficHookProgram: what the traffic hook adds per packet: a
// customer sends 1,472-byte datagrams (a 1,500-byte IP packet) to its own
// loopback socket, so both programs count each; without the hook, with
// it, and with it and an egress limit high enough never to drop (the
// policer's path too); 7 rounds interleaved, medians.
func BenchmarkTrafficHookProgram(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	holdUsersLock(b)
	u := newTestUser(b)
	bin := helperBinary(b)
	const sends = 200000
	spec := fmt.Sprintf("udpself %d 1472", sends)
	run := func() float64 {
		out := runConnects(b, u, bin, spec)
		v, err := strconv.ParseFloat(out[0], 64)
		if err != nil {
			b.Fatalf("udp loop: %s", out[0])
		}
		return v
	}
	root, err := platform.FindCgroup2Root()
	if err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		var without, counted, policed []float64
		var sent uint64
		for range 7 {
			without = append(without, run())
			h, err := enforce.OpenTrafficHook(root)
			if err != nil {
				b.Fatal(err)
			}
			if err := h.SetMinUID(1000); err != nil {
				b.Fatal(err)
			}
			if err := h.SetLimits(map[uint32]enforce.TrafficLimit{u.uid: {BytesPerSec: 1 << 40}}); err != nil {
				b.Fatal(err)
			}
			policed = append(policed, run())
			if err := h.SetLimits(nil); err != nil {
				b.Fatal(err)
			}
			counted = append(counted, run())
			m := map[uint32]enforce.TrafficCounts{}
			if err := h.Read(m); err != nil {
				b.Fatal(err)
			}
			if m[u.uid].TxDropped != 0 {
				b.Fatalf("the limit dropped %d packets", m[u.uid].TxDropped)
			}
			sent = m[u.uid].TxPackets
			h.Close()
		}
		if sent != 2*sends {
			b.Errorf("the hook counted %d packets out, %d were sent", sent, 2*sends)
		}
		med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
		b.ReportMetric(med(without), "ns/send-without-hook")
		b.ReportMetric(med(counted), "ns/send-counted")
		b.ReportMetric(med(policed), "ns/send-counted-policed")
		b.ReportMetric(med(counted)-med(without), "ns-added-counted")
		b.ReportMetric(med(policed)-med(without), "ns-added-policed")
	}
}
