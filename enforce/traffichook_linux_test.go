//go:build linux

package enforce_test

import (
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
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
