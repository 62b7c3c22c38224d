package enforce_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// dumped returns the dump's entry for the socket fd.
func dumped(t *testing.T, fd int) platform.Listener {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	d, err := platform.NewListenerDumper()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ls, err := d.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Inode == st.Ino {
			return l
		}
	}
	t.Fatalf("socket inode %d not dumped", st.Ino)
	return platform.Listener{}
}

// TestDestroySocket: SOCK_DESTROY by cookie closes a TCP listener (its
// holder's accept fails, a client's connect is refused), an IPv6 UDP and a
// UDP-Lite socket; a wrong cookie closes nothing (the control).
func TestDestroySocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN)")
	}
	sock := func(family, typ, proto int, sa unix.Sockaddr) int {
		fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, sa); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	lo4 := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	tcp := sock(unix.AF_INET, unix.SOCK_STREAM, 0, lo4)
	if err := unix.Listen(tcp, 4); err != nil {
		t.Fatal(err)
	}
	l := dumped(t, tcp)

	wrong := l
	wrong.Cookie++
	if err := enforce.DestroySocket(wrong); err == nil {
		t.Error("a wrong cookie destroyed something")
	}
	if got := dumped(t, tcp); got.Inode != l.Inode {
		t.Fatal("listener gone after a wrong cookie")
	}
	if err := enforce.DestroySocket(l); err != nil {
		t.Fatalf("destroy %s: %v", l, err)
	}
	if _, _, err := unix.Accept(tcp); err == nil {
		t.Error("accept on a destroyed listener succeeded")
	}
	c, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(c)
	if err := unix.Connect(c, &unix.SockaddrInet4{Port: int(l.Port), Addr: [4]byte{127, 0, 0, 1}}); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("connect to a destroyed listener: %v, want ECONNREFUSED", err)
	}
	if err := enforce.DestroySocket(l); !errors.Is(err, platform.ErrGone) {
		t.Errorf("second destroy: %v, want ErrGone", err)
	}

	for _, tc := range []struct {
		what          string
		family, proto int
		sa            unix.Sockaddr
	}{
		{"udp6", unix.AF_INET6, 0, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}},
		{"udplite", unix.AF_INET, unix.IPPROTO_UDPLITE, lo4},
	} {
		fd := sock(tc.family, unix.SOCK_DGRAM, tc.proto, tc.sa)
		l := dumped(t, fd)
		err := enforce.DestroySocket(l)
		if tc.proto == unix.IPPROTO_UDPLITE && err != nil && strings.Contains(err.Error(), "not supported") {
			t.Logf("%s: %v (this kernel's UDP-Lite has no destroy)", tc.what, err)
			continue
		}
		if err != nil {
			t.Errorf("destroy %s %s: %v", tc.what, l, err)
			continue
		}
		buf := make([]byte, 8)
		if _, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT); !errors.Is(err, unix.ECONNABORTED) {
			t.Errorf("%s: recv after destroy: %v, want ECONNABORTED", tc.what, err)
		}
	}

	// The enforcer never closes root's or a system uid's sockets.
	e := enforce.New(1000, nil, nil)
	if r := e.CloseSocket(enforce.CloseSocket{Listener: l}); r.Outcome != enforce.Skipped {
		t.Errorf("root's socket: %+v", r)
	}
}
