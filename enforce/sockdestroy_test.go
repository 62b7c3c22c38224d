package enforce

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/guardd/guardd/platform"
)

func TestAppendDestroyRequest(t *testing.T) {
	l := platform.Listener{Proto: platform.TCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080, UID: 1001, Cookie: 0x1122334455667788}
	b, err := appendDestroyRequest([]byte{0xee}, l, 7)
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	msg := b[1:]
	if len(msg) != 72 || ne.Uint32(msg[0:]) != 72 || ne.Uint16(msg[4:]) != 21 || ne.Uint16(msg[6:]) != 0x5 || ne.Uint32(msg[8:]) != 7 {
		t.Fatalf("header % x", msg[:16])
	}
	req := msg[16:]
	id := req[8:]
	if req[0] != 2 || req[1] != 6 || binary.BigEndian.Uint16(id[0:]) != 8080 || [4]byte(id[4:8]) != [4]byte{127, 0, 0, 1} ||
		ne.Uint32(id[40:]) != 0x55667788 || ne.Uint32(id[44:]) != 0x11223344 {
		t.Errorf("request % x", req)
	}
	for i, c := range id[20:40] { // dst, dport, if: zero
		if c != 0 {
			t.Errorf("byte %d of the remote half is %d", 20+i, c)
		}
	}

	// IPv6, a mapped address kept as IPv6 (the socket is AF_INET6), UDP-Lite.
	l6 := platform.Listener{Proto: platform.UDPLite, Addr: netip.MustParseAddr("::ffff:10.0.0.1"), Port: 53, Cookie: 1}
	b, _ = appendDestroyRequest(nil, l6, 8)
	req = b[16:]
	if a := l6.Addr.As16(); req[0] != 10 || req[1] != 136 || [16]byte(req[12:28]) != a {
		t.Errorf("IPv6 request % x", req)
	}
	for _, bad := range []platform.Listener{{Proto: platform.TCP, Port: 1, Cookie: 1}, {Proto: platform.TCP, Addr: l.Addr, Port: 1}} {
		if _, err := appendDestroyRequest(nil, bad, 1); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestParseAck(t *testing.T) {
	ack := func(seq uint32, errno int32) []byte {
		b := make([]byte, 36)
		ne := binary.NativeEndian
		ne.PutUint32(b[0:], 36)
		ne.PutUint16(b[4:], 2)
		ne.PutUint32(b[8:], seq)
		ne.PutUint32(b[16:], uint32(-errno))
		return b
	}
	if e, err := parseAck(ack(3, 0), 3); err != nil || e != 0 {
		t.Errorf("ok ack: %d %v", e, err)
	}
	if e, err := parseAck(append(ack(2, 1), ack(3, 2)...), 3); err != nil || e != 2 {
		t.Errorf("ENOENT after a stale ack: %d %v", e, err)
	}
	for _, b := range [][]byte{nil, ack(3, 0)[:20], {1, 2, 3}, ack(4, 0)} {
		if _, err := parseAck(b, 3); err == nil {
			t.Errorf("% x: no error", b)
		}
	}
	short := ack(3, 0)
	binary.NativeEndian.PutUint32(short[0:], 1000)
	if _, err := parseAck(short, 3); err == nil {
		t.Error("length beyond the buffer: no error")
	}
}
