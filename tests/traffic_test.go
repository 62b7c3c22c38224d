//go:build linux

package tests

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
)

// Traffic per customer, on loopback only: a customer's client sends to a
// sink the test runs (as root, so the sink's own packets count for
// nobody), and the kernel's per-uid counters, guardd's variables and its
// egress limit are checked against what was sent and how fast it went.

// trafficSink accepts connections on a loopback address and hands them
// over.
type trafficSink struct {
	port  int
	conns chan net.Conn
}

func newTrafficSink(t *testing.T, addr string) *trafficSink {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := &trafficSink{port: l.Addr().(*net.TCPAddr).Port, conns: make(chan net.Conn, 16)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			s.conns <- c
		}
	}()
	return s
}

func (s *trafficSink) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(Deadline):
		t.Fatal("the sender never connected")
		return nil
	}
}

// round asks the sender on c for one batch of n bytes and returns how
// long they took to arrive, from the first byte to the last.
func round(t *testing.T, c net.Conn, n int) time.Duration {
	t.Helper()
	if _, err := c.Write([]byte("g")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * Deadline))
	buf := make([]byte, 256<<10)
	k, err := io.ReadAtLeast(c, buf, 1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for got := k; got < n; {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", got, n, err)
		}
		got += k
	}
	return time.Since(start)
}

// kernelTotals is a traffic hook of the test's own (the same programs as
// guardd's, attached beside them): the kernel's totals per uid.
func kernelTotals(t *testing.T) func() map[uint32]enforce.TrafficCounts {
	t.Helper()
	root, err := platform.FindCgroup2Root()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	h, err := enforce.OpenTrafficHook(root)
	if err != nil {
		t.Skipf("no traffic hook here: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.SetMinUID(1000); err != nil {
		t.Fatal(err)
	}
	return func() map[uint32]enforce.TrafficCounts {
		m := map[uint32]enforce.TrafficCounts{}
		if err := h.Read(m); err != nil {
			t.Fatal(err)
		}
		return m
	}
}

func waitTrafficHook(t *testing.T, g *Guardd) {
	t.Helper()
	l := g.WaitLog(t, func(l LogLine) bool {
		return strings.HasPrefix(l.Msg, "traffic hook attached") || strings.HasPrefix(l.Msg, "traffic hook unavailable")
	}, Deadline)
	if strings.HasPrefix(l.Msg, "traffic hook unavailable") {
		t.Fatalf("guardd has no traffic hook although the test's loaded: %v", l.Attrs["why"])
	}
}

func within(got, want, tol float64) bool { return got >= want*(1-tol) && got <= want*(1+tol) }

// TestTrafficCounted: 24 MiB a customer sends over TCP are counted for
// it within 5 % (IP headers and the handshake on top), the 8 MiB a
// control user sends at the same time are not, guardd's
// user.tx_bytes_per_sec shows the burst in a report line, and
// user.connections counts the customer's three open connections.
func TestTrafficCounted(t *testing.T) {
	t.Parallel()
	u, ctl := NewUser(t), NewUser(t)
	totals := kernelTotals(t)
	sink := newTrafficSink(t, "127.0.0.1")
	g := StartGuardd(t, Class(u)+`
rule "talker" {
  class = "c"
  when  = user.tx_bytes_per_sec > 4000000
  report {}
}
rule "conns" {
  class = "c"
  when  = user.connections >= 3
  report {}
}
`)
	waitTrafficHook(t, g)
	const sent, ctlSent = 24 << 20, 8 << 20
	o := StartOffender(t, u, "send", "127.0.0.1", strconv.Itoa(sink.port), strconv.Itoa(sent), "3")
	o.WaitOutput(t, "connected 3", Deadline)
	first := sink.accept(t)
	sink.accept(t)
	sink.accept(t)
	oc := StartOffender(t, ctl, "send", "127.0.0.1", strconv.Itoa(sink.port), strconv.Itoa(ctlSent))
	oc.WaitOutput(t, "connected 1", Deadline)
	cfirst := sink.accept(t)

	before := totals()
	done := make(chan struct{})
	go func() {
		defer close(done)
		round(t, cfirst, ctlSent)
	}()
	round(t, first, sent)
	<-done
	o.WaitOutput(t, "sent "+strconv.Itoa(sent), Deadline)
	after := totals()

	d := after[u.UID].TxBytes - before[u.UID].TxBytes
	dc := after[ctl.UID].TxBytes - before[ctl.UID].TxBytes
	t.Logf("customer: %d bytes sent, %d counted (%d packets); control: %d sent, %d counted",
		sent, d, after[u.UID].TxPackets-before[u.UID].TxPackets, ctlSent, dc)
	if !within(float64(d), sent, 0.05) {
		t.Errorf("customer: %d bytes counted out, sent %d (±5 %%)", d, sent)
	}
	if !within(float64(dc), ctlSent, 0.05) {
		t.Errorf("control: %d bytes counted out, sent %d (±5 %%)", dc, ctlSent)
	}
	// The customer received only the sink's "g" and ACKs, which are the
	// customer's socket's too: small, not the control's megabytes.
	if rx := after[u.UID].RxBytes - before[u.UID].RxBytes; rx > sent/10 {
		t.Errorf("customer: %d bytes counted in, expected only ACKs", rx)
	}

	ev := g.WaitAudit(t, func(ev Event) bool { return ev.Rule == "talker" && ev.UID == u.UID }, Deadline)
	v, _ := ev.Values["user.tx_bytes_per_sec"].(float64)
	if v <= 4e6 {
		t.Errorf("talker line: user.tx_bytes_per_sec = %v, want > 4e6: %+v", ev.Values["user.tx_bytes_per_sec"], ev)
	}
	ev = g.WaitAudit(t, func(ev Event) bool { return ev.Rule == "conns" && ev.UID == u.UID }, Deadline)
	if n, _ := ev.Values["user.connections"].(float64); n != 3 {
		t.Errorf("conns line: user.connections = %v, want 3 (the sink's ends are root's)", ev.Values["user.connections"])
	}
	for _, ev := range g.Audit(t) {
		if ev.UID == ctl.UID {
			t.Errorf("a line for the control user, who is in no class: %+v", ev)
		}
	}
}

// TestTrafficEgressLimit: a customer under `egress_bps = "2MiB"` is held
// to it over IPv4 and IPv6 (throughput measured at the receiving end over
// a few seconds, ±30 %), a control user without the limit sends the same much faster,
// and a reload without the limit releases the customer at once.
func TestTrafficEgressLimit(t *testing.T) {
	t.Parallel()
	u, ctl := NewUser(t), NewUser(t)
	sink, sink6 := newTrafficSink(t, "127.0.0.1"), newTrafficSink(t, "::1")
	const rate = 2 << 20
	limited := Class(u) + `
limits "c" {
  class      = "c"
  egress_bps = "2MiB"
}
`
	g := StartGuardd(t, limited)
	waitTrafficHook(t, g)
	o := StartOffender(t, u, "send", "127.0.0.1", strconv.Itoa(sink.port), strconv.Itoa(8<<20))
	o.WaitOutput(t, "connected 1", Deadline)
	c := sink.accept(t)
	g.WaitLog(t, func(l LogLine) bool {
		return l.Msg == "egress limit applied" && fmt.Sprint(l.Attrs["uid"]) == strconv.Itoa(int(u.UID))
	}, Deadline)

	const n = 8 << 20
	el := round(t, c, n)
	got := float64(n) / el.Seconds()
	t.Logf("limited: %d bytes in %v: %.0f bytes/s (limit %d)", n, el, got, rate)
	if !within(got, rate, 0.30) {
		t.Errorf("limited customer sent at %.0f bytes/s, limit %d (±30 %%)", got, rate)
	}

	// IPv6 alike.
	o6 := StartOffender(t, u, "send", "::1", strconv.Itoa(sink6.port), strconv.Itoa(n))
	o6.WaitOutput(t, "connected 1", Deadline)
	el = round(t, sink6.accept(t), n)
	got = float64(n) / el.Seconds()
	t.Logf("limited over IPv6: %d bytes in %v: %.0f bytes/s", n, el, got)
	if !within(got, rate, 0.30) {
		t.Errorf("limited customer sent over IPv6 at %.0f bytes/s, limit %d (±30 %%)", got, rate)
	}

	oc := StartOffender(t, ctl, "send", "127.0.0.1", strconv.Itoa(sink.port), strconv.Itoa(n))
	oc.WaitOutput(t, "connected 1", Deadline)
	cc := sink.accept(t)
	elc := round(t, cc, n)
	free := float64(n) / elc.Seconds()
	t.Logf("control: %d bytes in %v: %.0f bytes/s", n, elc, free)
	if free < 5*rate {
		t.Errorf("control without a limit sent at %.0f bytes/s, not much faster than the limit %d", free, rate)
	}

	// Released on reload.
	g.SetPolicy(t, Class(u))
	g.Reload(t)
	g.WaitLog(t, func(l LogLine) bool {
		return l.Msg == "egress limit released" && fmt.Sprint(l.Attrs["uid"]) == strconv.Itoa(int(u.UID))
	}, Deadline)
	el = round(t, c, n)
	after := float64(n) / el.Seconds()
	t.Logf("released: %d bytes in %v: %.0f bytes/s", n, el, after)
	if after < 5*rate {
		t.Errorf("after the reload the customer still sends at %.0f bytes/s (limit was %d)", after, rate)
	}
}

// TestTrafficConnectRefusals: the connects the connect hook refuses a
// customer show in user.connect_refusals; a control user of the same
// class whose connects are allowed gets no line.
func TestTrafficConnectRefusals(t *testing.T) {
	t.Parallel()
	u, ctl := NewUser(t), NewUser(t)
	port := smtpServers(t, false)
	g := StartGuardd(t, Class(u, ctl)+connectBlock("enforce", port)+`
rule "spammer" {
  class = "c"
  when  = user.connect_refusals > 0
  report {}
}
`)
	waitConnectHook(t, g)
	oc := dial(t, ctl, "tcp", "127.0.0.1", port, 5) // the local MTA: allowed
	oc.WaitOutput(t, "dial ok 5", Deadline)
	o := dial(t, u, "tcp", "127.0.0.2", port, 5)
	o.WaitOutput(t, "dial EPERM 5", Deadline)
	ev := g.WaitAudit(t, func(ev Event) bool { return ev.Rule == "spammer" && ev.UID == u.UID }, Deadline)
	if n, _ := ev.Values["user.connect_refusals"].(float64); n < 1 || n > 5 {
		t.Errorf("user.connect_refusals = %v, want 1 to 5 (5 refused, maybe over two ticks)", ev.Values["user.connect_refusals"])
	}
	// The refusals' own lines are written by then; the control has none.
	g.WaitAudit(t, func(ev Event) bool { return ev.Action == "refuse-connect" && ev.UID == u.UID }, Deadline)
	for _, ev := range g.Audit(t) {
		if ev.UID == ctl.UID {
			t.Errorf("a line for the control, whose connects were allowed: %+v", ev)
		}
	}
}
