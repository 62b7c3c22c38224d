package platform

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sockdiagFixtures: what each capture is known to hold (captureSockets in
// listeners_linux_test.go opens these sockets before capturing) and what
// it must not.
var sockdiagFixtures = map[string]struct {
	proto    Proto
	has      []string // "ADDR:PORT/proto uid"
	hasNot   []string // "ADDR:PORT/proto"
	minCount int
}{
	"tcp4-listen": {TCP, []string{"127.0.0.1:47001/tcp 0"}, []string{"127.0.0.1:47008/tcp"}, 402},
	"tcp6-listen": {TCP, []string{"[::1]:47002/tcp 0", "[::]:47003/tcp 0", "[::ffff:127.0.0.1]:47004/tcp 0"}, nil, 3},
	"udp4-bound":  {UDP, []string{"0.0.0.0:47005/udp 0"}, []string{"127.0.0.1:47007/udp"}, 1},
	"udp6-bound":  {UDP, []string{"[::1]:47006/udp 0"}, nil, 1},
}

func TestParseDiagFixtures(t *testing.T) {
	dir := filepath.Join("testdata", "sockdiag")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(sockdiagFixtures) {
		t.Errorf("%d fixtures in %s, %d expectations", len(ents), dir, len(sockdiagFixtures))
	}
	for _, e := range ents {
		want, ok := sockdiagFixtures[e.Name()]
		if !ok {
			t.Errorf("%s: no expectation for this fixture", e.Name())
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var ls []Listener
		done, err := ParseDiagMessages(b, 1, want.proto, func(l Listener) { ls = append(ls, l) })
		if err != nil || !done {
			t.Errorf("%s: done %v, err %v", e.Name(), done, err)
		}
		if len(ls) < want.minCount {
			t.Errorf("%s: %d listeners, want at least %d", e.Name(), len(ls), want.minCount)
		}
		seen := map[string]bool{}
		uid1000 := 0
		for _, l := range ls {
			seen[l.String()+" "+itoa(l.UID)] = true
			seen[l.String()] = true
			if l.Inode == 0 || l.Port == 0 || l.Proto != want.proto {
				t.Errorf("%s: %+v", e.Name(), l)
			}
			if l.UID == 1000 && l.Addr == netip.MustParseAddr("127.0.0.2") {
				uid1000++
			}
		}
		for _, h := range want.has {
			if !seen[h] {
				t.Errorf("%s: no %s", e.Name(), h)
			}
		}
		for _, h := range want.hasNot {
			if seen[h] {
				t.Errorf("%s: has %s, which is not a listener", e.Name(), h)
			}
		}
		if e.Name() == "tcp4-listen" && uid1000 != 400 {
			t.Errorf("%s: %d listeners of uid 1000 on 127.0.0.2, want 400", e.Name(), uid1000)
		}
		// Another sequence number: a stale dump, skipped whole.
		n := 0
		done, err = ParseDiagMessages(b, 2, want.proto, func(Listener) { n++ })
		if n != 0 || done || err != nil {
			t.Errorf("%s as seq 2: %d listeners, done %v, err %v", e.Name(), n, done, err)
		}
	}
}

func itoa(u uint32) string { return strconv.FormatUint(uint64(u), 10) }

// nlmsg builds one netlink message (header, payload, padding to 4).
func nlmsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, diagNlmsgHdrLen, diagNlmsgHdrLen+len(payload)+3)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(diagNlmsgHdrLen+len(payload)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], flags)
	ne.PutUint32(b[8:], seq)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// diagMsg builds a struct inet_diag_msg.
func diagMsg(family, state uint8, addr netip.Addr, port uint16, uid, inode uint32) []byte {
	b := make([]byte, diagInetDiagMsgLen)
	b[0], b[1] = family, state
	binary.BigEndian.PutUint16(b[4:], port)
	a := addr.AsSlice()
	copy(b[8:], a)
	binary.NativeEndian.PutUint32(b[64:], uid)
	binary.NativeEndian.PutUint32(b[68:], inode)
	return b
}

func errno(e int32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, uint32(e))
	return b
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestParseDiagMessagesHostile(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	listen := nlmsg(diagSockDiagByFamily, 2, 7, diagMsg(diagAfInet, diagTcpListen, lo, 8080, 1001, 555))
	done := nlmsg(diagNlmsgDone, 2, 7, errno(0))
	for _, tc := range []struct {
		name  string
		b     []byte
		proto Proto
		want  string // listeners as "ADDR:PORT/proto uid inode", then "done" or the error
	}{
		{"listener then done", cat(listen, done), TCP, "127.0.0.1:8080/tcp 1001 555 done"},
		{"done without payload", cat(listen, nlmsg(diagNlmsgDone, 2, 7, nil)), TCP, "127.0.0.1:8080/tcp 1001 555 done"},
		{"more to come", listen, TCP, "127.0.0.1:8080/tcp 1001 555 more"},
		{"empty", nil, TCP, "more"},
		{"noop", cat(nlmsg(diagNlmsgNoop, 0, 7, nil), done), TCP, "done"},
		{"stale seq skipped", cat(nlmsg(diagSockDiagByFamily, 2, 6, diagMsg(diagAfInet, diagTcpListen, lo, 1, 0, 1)), listen, done), TCP, "127.0.0.1:8080/tcp 1001 555 done"},
		{"port 0 skipped", cat(nlmsg(diagSockDiagByFamily, 2, 7, diagMsg(diagAfInet, diagTcpListen, lo, 0, 0, 1)), done), TCP, "done"},
		{"TCP not listening skipped", cat(nlmsg(diagSockDiagByFamily, 2, 7, diagMsg(diagAfInet, 1, lo, 80, 0, 1)), done), TCP, "done"},
		{"UDP connected skipped", cat(nlmsg(diagSockDiagByFamily, 2, 7, diagMsg(diagAfInet, 1, lo, 53, 0, 1)), done), UDP, "done"},
		{"UDP bound", cat(nlmsg(diagSockDiagByFamily, 2, 7, diagMsg(diagAfInet, diagTcpClose, lo, 53, 0, 9)), done), UDP, "127.0.0.1:53/udp 0 9 done"},
		{"IPv6", cat(nlmsg(diagSockDiagByFamily, 2, 7, diagMsg(diagAfInet6, diagTcpListen, netip.MustParseAddr("::1"), 22, 0, 9)), done), TCP, "[::1]:22/tcp 0 9 done"},
		{"error", nlmsg(diagNlmsgError, 0, 7, errno(-1)), TCP, "request refused: errno 1"},
		{"ack", nlmsg(diagNlmsgError, 0, 7, errno(0)), TCP, "done"},
		{"short error", nlmsg(diagNlmsgError, 0, 7, []byte{1}), TCP, "short error"},
		{"done with errno", nlmsg(diagNlmsgDone, 2, 7, errno(-4)), TCP, "dump failed: errno 4"},
		{"interrupted", nlmsg(diagSockDiagByFamily, 2|diagNlmFDumpIntr, 7, diagMsg(diagAfInet, diagTcpListen, lo, 80, 0, 1)), TCP, "interrupted"},
		{"unknown type", nlmsg(99, 0, 7, nil), TCP, "unexpected message type 99"},
		{"short diag msg", nlmsg(diagSockDiagByFamily, 2, 7, make([]byte, 40)), TCP, "inet_diag_msg of 40 bytes"},
		{"bad family", nlmsg(diagSockDiagByFamily, 2, 7, diagMsg(7, diagTcpListen, lo, 80, 0, 1)), TCP, "address family 7"},
		{"truncated header", listen[:10], TCP, "shorter than a netlink header"},
		{"truncated message", listen[:40], TCP, "out of bounds"},
		{"length below header", func() []byte {
			b := cat(listen)
			binary.NativeEndian.PutUint32(b, 8)
			return b
		}(), TCP, "out of bounds"},
		{"length huge", func() []byte {
			b := cat(listen)
			binary.NativeEndian.PutUint32(b, 1<<31)
			return b
		}(), TCP, "out of bounds"},
		{"last message unpadded", cat(listen, nlmsg(diagSockDiagByFamily, 2, 7, append(diagMsg(diagAfInet, diagTcpListen, lo, 81, 0, 2), 1))[:diagNlmsgHdrLen+diagInetDiagMsgLen+1]), TCP,
			"127.0.0.1:8080/tcp 1001 555 127.0.0.1:81/tcp 0 2 more"},
	} {
		var got []string
		d, err := ParseDiagMessages(tc.b, 7, tc.proto, func(l Listener) {
			got = append(got, l.String()+" "+itoa(l.UID)+" "+itoa(uint32(l.Inode)))
		})
		switch {
		case err != nil:
			got = append(got, err.Error())
		case d:
			got = append(got, "done")
		default:
			got = append(got, "more")
		}
		if s := strings.Join(got, " "); !strings.Contains(s, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, s, tc.want)
		}
	}
}

func TestAppendDiagRequest(t *testing.T) {
	b := AppendDiagRequest([]byte("x"), DiagRequest{Family: diagAfInet6, Proto: UDP, States: 1 << diagTcpClose, Seq: 42})
	m := b[1:]
	ne := binary.NativeEndian
	if len(m) != 72 || ne.Uint32(m[0:]) != 72 || ne.Uint16(m[4:]) != diagSockDiagByFamily ||
		ne.Uint16(m[6:]) != diagNlmFRequest|diagNlmFDump || ne.Uint32(m[8:]) != 42 {
		t.Fatalf("header %x", m[:16])
	}
	if m[16] != diagAfInet6 || m[17] != 17 || m[18] != 0 || ne.Uint32(m[20:]) != 1<<7 || string(m[24:]) != string(make([]byte, 48)) {
		t.Errorf("request %x", m[16:])
	}
	if b[0] != 'x' {
		t.Error("AppendDiagRequest clobbered what it appends to")
	}
}

func TestParsePortRange(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "cgroup", "ip_local_port_range"))
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi, err := ParsePortRange(b); lo != 32768 || hi != 60999 || err != nil {
		t.Errorf("captured range: %d-%d %v", lo, hi, err)
	}
	for in, want := range map[string]string{
		"1024 65535\n":           "1024-65535",
		"  9\t9":                 "9-9",
		"32768":                  "bad field",
		"":                       "bad field",
		"60999 32768\n":          "60999 > 32768",
		"1 70000":                "bad field",
		"-1 5":                   "bad field",
		"1 2 3":                  "extra field",
		"1\x002":                 "bad field",
		"99999999999 1":          "bad field",
		"1 2\n\n":                "1-2",
		"0x10 20":                "bad field",
		"1 18446744073709551616": "bad field",
	} {
		lo, hi, err := ParsePortRange([]byte(in))
		got := itoa(uint32(lo)) + "-" + itoa(uint32(hi))
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, want) {
			t.Errorf("ParsePortRange(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestParseSocketLink(t *testing.T) {
	for in, want := range map[string]int64{
		"socket:[12345]":                12345,
		"socket:[0]":                    0,
		"socket:[18446744073709551615]": -2, // max uint64: ok, checked below
		"socket:[]":                     -1,
		"socket:[12a]":                  -1,
		"socket:[12345":                 -1,
		"pipe:[12345]":                  -1,
		"/tmp/socket:[1]":               -1,
		"anon_inode:[eventpoll]":        -1,
		"":                              -1,
		"socket:[-1]":                   -1,
	} {
		inode, ok := ParseSocketLink([]byte(in))
		switch {
		case want == -1 && ok:
			t.Errorf("ParseSocketLink(%q) = %d, want not a socket", in, inode)
		case want == -2 && (!ok || inode != 1<<64-1):
			t.Errorf("ParseSocketLink(%q) = %d %v", in, inode, ok)
		case want >= 0 && (!ok || inode != uint64(want)):
			t.Errorf("ParseSocketLink(%q) = %d %v, want %d", in, inode, ok, want)
		}
	}
}

func TestCgroup2Root(t *testing.T) {
	dir := filepath.Join("testdata", "cgroup")
	want := map[string]string{
		"mountinfo-hybrid":            "/sys/fs/cgroup/unified", // this host: cgroup v1 controllers and a v2 hierarchy
		"hand-mountinfo-unified":      "/sys/fs/cgroup",
		"hand-mountinfo-none":         "",
		"hand-mountinfo-subtree":      "/sys/fs/cgroup root", // the root mount wins over a subtree listed first
		"hand-mountinfo-only-subtree": "/sys/fs/cgroup",      // a container's view: better than nothing
		"ip_local_port_range":         "-",
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		w, ok := want[e.Name()]
		if !ok {
			t.Errorf("%s: no expectation for this fixture", e.Name())
			continue
		}
		if w == "-" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		mounts, _ := ParseMountInfo(b)
		got, ok := Cgroup2Root(mounts)
		if got != w || ok != (w != "") {
			t.Errorf("%s: Cgroup2Root = %q, %v; want %q", e.Name(), got, ok, w)
		}
	}
}

func TestListenerString(t *testing.T) {
	for _, tc := range []struct {
		l    Listener
		want string
	}{
		{Listener{Proto: TCP, Addr: netip.MustParseAddr("0.0.0.0"), Port: 8080}, "0.0.0.0:8080/tcp"},
		{Listener{Proto: UDP, Addr: netip.MustParseAddr("::"), Port: 53}, "[::]:53/udp"},
		{Listener{Proto: 132, Addr: netip.MustParseAddr("::1"), Port: 1}, "[::1]:1/proto132"},
	} {
		if got := tc.l.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.l, got, tc.want)
		}
	}
}

// FuzzParseDiagMessages: any bytes as a netlink answer. It never panics;
// every listener it reports has a port, a valid address and the asked
// protocol; and a buffer cut anywhere parses without panic too.
func FuzzParseDiagMessages(f *testing.F) {
	for _, name := range []string{"tcp6-listen", "udp4-bound", "udp6-bound"} {
		b, err := os.ReadFile(filepath.Join("testdata", "sockdiag", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint32(1), uint8(TCP))
	}
	lo := netip.MustParseAddr("127.0.0.1")
	f.Add(cat(nlmsg(diagSockDiagByFamily, 2, 7, diagMsg(diagAfInet, diagTcpListen, lo, 8080, 1001, 555)), nlmsg(diagNlmsgDone, 2, 7, errno(0))), uint32(7), uint8(TCP))
	f.Add(nlmsg(diagNlmsgError, 0, 7, errno(-1)), uint32(7), uint8(UDP))
	f.Fuzz(func(t *testing.T, b []byte, seq uint32, proto uint8) {
		p := Proto(proto)
		check := func(l Listener) {
			if l.Port == 0 || !l.Addr.IsValid() || l.Proto != p {
				t.Fatalf("bad listener %+v", l)
			}
		}
		ParseDiagMessages(b, seq, p, check)
		for _, cut := range []int{len(b) / 2, len(b) - 1} {
			if cut > 0 {
				ParseDiagMessages(b[:cut], seq, p, check)
			}
		}
	})
}

// FuzzParsePortRange: never panics; a parsed range is ordered.
func FuzzParsePortRange(f *testing.F) {
	f.Add([]byte("32768\t60999\n"))
	f.Add([]byte("1 2 3"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lo, hi, err := ParsePortRange(b)
		if err == nil && lo > hi {
			t.Fatalf("%q: %d > %d", b, lo, hi)
		}
	})
}

// FuzzParseSocketLink: never panics; what parses is the decimal between
// "socket:[" and "]".
func FuzzParseSocketLink(f *testing.F) {
	f.Add([]byte("socket:[12345]"))
	f.Add([]byte("pipe:[1]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		inode, ok := ParseSocketLink(b)
		if !ok {
			return
		}
		want, err := strconv.ParseUint(string(b[len("socket:["):len(b)-1]), 10, 64)
		if err != nil || want != inode || !strings.HasPrefix(string(b), "socket:[") {
			t.Fatalf("%q parsed as %d", b, inode)
		}
	})
}
