package platform

import (
	"net"
	"os"
	"testing"
)

// A loopback connection of this process adds two established sockets
// (both ends) to its uid; closing it takes them away.
func TestConnectionCounterLive(t *testing.T) {
	c, err := NewConnectionCounter()
	if err != nil {
		t.Skip(err)
	}
	defer c.Close()
	uid := uint32(os.Geteuid())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m := map[uint32]int32{}
	if err := c.Count(m); err != nil {
		t.Fatal(err)
	}
	before := m[uid]
	var conns []net.Conn
	for range 3 {
		d, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, d, a)
	}
	if err := c.Count(m); err != nil {
		t.Fatal(err)
	}
	// Other tests of the machine may open or close connections of this
	// uid meanwhile: at least ours must show.
	if got := m[uid] - before; got < 6 {
		t.Errorf("uid %d: %d more established sockets, opened 6 ends", uid, got)
	}
	for _, x := range conns {
		x.Close()
	}
	if len(m) == 0 {
		t.Error("no uid has an established connection")
	}
}
