package platform

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// captureEnv re-captures testdata/sockdiag from this host (as root):
//
//	GUARDD_CAPTURE=1 go test -run TestCaptureSockDiag ./platform/
//
// The expectations in listeners_test.go name the sockets this opens, so
// they hold after a re-capture; other sockets of the host come along.
const captureEnv = "GUARDD_CAPTURE"

// captureSockets opens the sockets the sockdiag fixtures are known to
// hold. They are closed when the test ends.
func captureSockets(t *testing.T) {
	t.Helper()
	var closers []func() error
	t.Cleanup(func() {
		for _, c := range closers {
			c()
		}
	})
	listen := func(network, addr string) {
		l, err := net.Listen(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, l.Close)
	}
	packet := func(network, addr string) net.PacketConn {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, c.Close)
		return c
	}
	listen("tcp4", "127.0.0.1:47001")
	listen("tcp6", "[::1]:47002")
	listen("tcp", "[::]:47003") // dual-stack
	// An IPv4-mapped bind on an IPv6 socket (the net package refuses it).
	fd6, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, func() error { return unix.Close(fd6) })
	mapped := netip.MustParseAddr("::ffff:127.0.0.1").As16()
	if err := unix.Bind(fd6, &unix.SockaddrInet6{Port: 47004, Addr: mapped}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd6, 1); err != nil {
		t.Fatal(err)
	}
	packet("udp4", "0.0.0.0:47005")
	packet("udp6", "[::1]:47006")
	// Not listeners: a connected UDP socket, a bound TCP socket that
	// never called listen().
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 47007}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 47005})
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, c.Close)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, func() error { return unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 47008, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	// Enough listeners of another owner for a dump of several recv(2)
	// buffers. A socket's owner is the fsuid of its creator: set on this
	// locked thread only, and restored before the thread is released.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	unix.Setfsuid(1000)
	for range 400 {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			closers = append(closers, func() error { return unix.Close(fd) })
			if err = unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 2}}); err == nil {
				err = unix.Listen(fd, 1)
			}
		}
		if err != nil {
			unix.Setfsuid(0)
			t.Fatal(err)
		}
	}
	unix.Setfsuid(0)
	if prev, _ := unix.SetfsuidRetUid(-1); prev != 0 {
		t.Fatalf("fsuid still %d", prev)
	}
}

func TestCaptureSockDiag(t *testing.T) {
	if os.Getenv(captureEnv) != "1" || os.Geteuid() != 0 {
		t.Skipf("set %s=1 and run as root to re-capture testdata/sockdiag", captureEnv)
	}
	captureSockets(t)
	for i, r := range listenerRequests {
		d, err := NewListenerDumper()
		if err != nil {
			t.Fatal(err)
		}
		var all []byte
		recvs := 0
		d.raw = func(_ DiagRequest, b []byte) { all = append(all, b...); recvs++ }
		ls, err := d.dump(nil, r) // the first request of a dumper: seq 1
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		name := fixtureNames[i]
		if err := os.WriteFile(filepath.Join("testdata", "sockdiag", name), all, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d listeners, %d bytes in %d recv(2)", name, len(ls), len(all), recvs)
	}
}

// fixtureNames are the sockdiag fixtures, one per listenerRequests entry.
var fixtureNames = [...]string{"tcp4-listen", "tcp6-listen", "udp4-bound", "udp6-bound"}

// sockInode returns the inode of a socket: what sock_diag and /proc/PID/fd
// call it.
func sockInode(t *testing.T, c interface {
	SyscallConn() (syscall.RawConn, error)
}) uint64 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) })
	if serr != nil {
		t.Fatal(serr)
	}
	return st.Ino
}

func TestListenerDumper(t *testing.T) {
	tl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	t6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer t6.Close()
	ul, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	uc, err := net.DialUDP("udp4", nil, ul.LocalAddr().(*net.UDPAddr)) // connected: not a listener
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()

	want := map[string]uint64{
		netip.MustParseAddrPort(tl.Addr().String()).String() + "/tcp":      sockInode(t, tl.(*net.TCPListener)),
		netip.MustParseAddrPort(t6.Addr().String()).String() + "/tcp":      sockInode(t, t6.(*net.TCPListener)),
		netip.MustParseAddrPort(ul.LocalAddr().String()).String() + "/udp": sockInode(t, ul),
	}
	notWant := netip.MustParseAddrPort(uc.LocalAddr().String()).String() + "/udp"

	d, err := NewListenerDumper()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for round := range 2 { // the dumper is reused tick after tick
		ls, err := d.Dump(nil)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]Listener{}
		for _, l := range ls {
			seen[l.String()] = l
		}
		for where, inode := range want {
			l, ok := seen[where]
			if !ok {
				t.Errorf("round %d: %s not dumped", round, where)
				continue
			}
			if l.Inode != inode || l.UID != uint32(os.Geteuid()) {
				t.Errorf("round %d: %s: inode %d uid %d, want %d %d", round, where, l.Inode, l.UID, inode, os.Geteuid())
			}
		}
		if _, ok := seen[notWant]; ok {
			t.Errorf("round %d: connected UDP socket %s dumped as a listener", round, notWant)
		}
	}

	// The same sockets /proc/net/tcp shows as listening (state 0A): the
	// peer's view, from a parser of the test's own.
	ls, _ := d.Dump(nil)
	dumped := map[uint64]bool{}
	for _, l := range ls {
		dumped[l.Inode] = true
	}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		for _, inode := range procNetListening(t, file) {
			if !dumped[inode] && inodeStillListening(inode, file) {
				t.Errorf("%s lists listening socket inode %d, sock_diag does not", file, inode)
			}
		}
	}

	tl.Close()
	ls, _ = d.Dump(nil)
	for _, l := range ls {
		if l.Inode == want[netip.MustParseAddrPort(tl.Addr().String()).String()+"/tcp"] {
			t.Errorf("closed listener still dumped: %v", l)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dump(nil); err == nil {
		t.Error("Dump after Close succeeded")
	}
}

// procNetListening returns the inodes of the LISTEN (0A) lines of a
// /proc/net/tcp file.
func procNetListening(t *testing.T, file string) []uint64 {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []uint64
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" {
			continue
		}
		if inode, err := strconv.ParseUint(fields[9], 10, 64); err == nil && inode != 0 {
			out = append(out, inode)
		}
	}
	return out
}

// inodeStillListening rules out a socket that closed between the two
// reads (another test's).
func inodeStillListening(inode uint64, file string) bool {
	b, _ := os.ReadFile(file)
	return strings.Contains(string(b), " "+strconv.FormatUint(inode, 10)+" ")
}

func TestSocketScanner(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	inode := sockInode(t, l.(*net.TCPListener))
	s := NewSocketScanner()
	self := int32(os.Getpid())
	found := false
	if err := s.Scan(self, func(i uint64) bool { found = found || i == inode; return true }); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Errorf("Scan(self) did not find socket inode %d", inode)
	}
	if ok, err := s.Holds(self, inode); !ok || err != nil {
		t.Errorf("Holds(self, %d) = %v, %v", inode, ok, err)
	}
	if ok, err := s.Holds(self, 1); ok || err != nil {
		t.Errorf("Holds(self, 1) = %v, %v", ok, err)
	}
	stops := 0
	s.Scan(self, func(uint64) bool { stops++; return false })
	if stops != 1 {
		t.Errorf("Scan went on after fn returned false (%d calls)", stops)
	}
	if err := s.Scan(1<<30, func(uint64) bool { return true }); !errors.Is(err, ErrGone) {
		t.Errorf("Scan(no such pid) = %v, want ErrGone", err)
	}
}

func TestEphemeralPortsAndCgroup(t *testing.T) {
	lo, hi, err := EphemeralPorts()
	if err != nil || lo == 0 || hi < lo {
		t.Errorf("EphemeralPorts() = %d, %d, %v", lo, hi, err)
	}
	root, err := FindCgroup2Root()
	if err != nil {
		t.Skipf("no cgroup v2 here: %v", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Errorf("FindCgroup2Root() = %s: not a cgroup2 filesystem (%v)", root, err)
	}
}

// TestListenerDumperEveryFamily: what a customer can listen on besides
// TCP and UDP: UDP-Lite (IPv4 and IPv6), MPTCP (seen as its TCP subflow
// listener, same inode), a UDP socket the kernel bound to an ephemeral
// port at its first sendto(2). Each comes with the cookie that SOCK_DESTROY
// needs.
func TestListenerDumperEveryFamily(t *testing.T) {
	type sock struct {
		what  string
		proto Proto
		fd    int
	}
	var socks []sock
	open := func(what string, proto Proto, family, typ, protocol int, sa unix.Sockaddr, listen bool) {
		fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, protocol)
		if err != nil {
			t.Logf("%s: %v (not in this kernel)", what, err)
			return
		}
		t.Cleanup(func() { unix.Close(fd) })
		if sa != nil {
			if err := unix.Bind(fd, sa); err != nil {
				t.Fatalf("%s: bind: %v", what, err)
			}
		}
		if listen {
			if err := unix.Listen(fd, 1); err != nil {
				t.Fatalf("%s: listen: %v", what, err)
			}
		}
		socks = append(socks, sock{what, proto, fd})
	}
	lo4 := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	lo6 := &unix.SockaddrInet6{Addr: [16]byte{15: 1}}
	open("udplite4", UDPLite, unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_UDPLITE, lo4, false)
	open("udplite6", UDPLite, unix.AF_INET6, unix.SOCK_DGRAM, unix.IPPROTO_UDPLITE, lo6, false)
	open("mptcp", TCP, unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_MPTCP, lo4, true)
	open("udp6 autobound", UDP, unix.AF_INET6, unix.SOCK_DGRAM, 0, nil, false)
	// The autobound socket: its first sendto binds it (to the discard
	// port of loopback: nothing listens there, nothing is sent off-host).
	if err := unix.Sendto(socks[len(socks)-1].fd, []byte("x"), 0, &unix.SockaddrInet6{Port: 9, Addr: [16]byte{15: 1}}); err != nil {
		t.Fatalf("sendto: %v", err)
	}
	d, err := NewListenerDumper()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ls, err := d.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	byInode := map[uint64]Listener{}
	cookies := map[uint64]bool{}
	for _, l := range ls {
		byInode[l.Inode] = l
		if cookies[l.Cookie] {
			t.Errorf("cookie %d twice", l.Cookie)
		}
		cookies[l.Cookie] = true
	}
	for _, s := range socks {
		sa, err := unix.Getsockname(s.fd)
		if err != nil {
			t.Fatal(err)
		}
		var port int
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			port = a.Port
		case *unix.SockaddrInet6:
			port = a.Port
		}
		var st unix.Stat_t
		if err := unix.Fstat(s.fd, &st); err != nil {
			t.Fatal(err)
		}
		l, ok := byInode[st.Ino]
		switch {
		case !ok:
			t.Errorf("%s (port %d, inode %d) not dumped", s.what, port, st.Ino)
		case l.Proto != s.proto || int(l.Port) != port || l.Cookie == 0 || l.UID != uint32(os.Geteuid()):
			t.Errorf("%s dumped as %+v, want %s port %d with a cookie", s.what, l, s.proto, port)
		}
	}
}

// TestSocketScannerPrivateTable: a socket held only in a thread's private
// descriptor table (unshare(CLONE_FILES)) is not in /proc/PID/fd — the
// hiding works — and Scan finds it all the same.
func TestSocketScannerPrivateTable(t *testing.T) {
	type result struct {
		inode uint64
		err   error
	}
	got, done := make(chan result), make(chan struct{})
	var hide func()
	hide = func() {
		// Never unlocked: the thread, with its private table, ends with
		// the goroutine instead of returning to the runtime's pool.
		runtime.LockOSThread()
		if unix.Gettid() == os.Getpid() {
			// The main thread: its table is what /proc/PID/fd shows.
			// Hold it, and hide from another thread.
			go hide()
			<-done
			return
		}
		if err := unix.Unshare(unix.CLONE_FILES); err != nil {
			got <- result{err: err}
			return
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			got <- result{err: err}
			return
		}
		got <- result{inode: st.Ino}
		<-done
	}
	go hide()
	r := <-got
	defer close(done)
	if r.err != nil {
		t.Skipf("cannot make a private descriptor table: %v", r.err)
	}
	self := int32(os.Getpid())
	s := NewSocketScanner()
	inLeader := false
	if _, err := s.scanDir("/proc/self/fd", func(i uint64) bool { inLeader = inLeader || i == r.inode; return true }); err != nil {
		t.Fatal(err)
	}
	if inLeader {
		t.Fatal("the socket shows in /proc/PID/fd: the table is not private")
	}
	if ok, err := s.Holds(self, r.inode); !ok || err != nil {
		t.Errorf("Holds(self, socket of a private table) = %v, %v", ok, err)
	}
}
