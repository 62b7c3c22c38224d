//go:build linux

package enforce_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// As the bind helper: GUARDD_BINDHOOK_TEST_HELPER=connect makes the test
// binary try the connects given as arguments ("tcp 127.0.0.2 2525 [N]",
// "udp ::ffff:127.0.0.2 2525", "loop N ADDR PORT") and print one result per
// spec.
func init() {
	if os.Getenv(bindHelperEnv) != "connect" {
		return
	}
	lim := unix.Rlimit{Cur: 64, Max: 64} // the safety net first
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "helper: setrlimit:", err)
		os.Exit(3)
	}
	for _, spec := range os.Args[1:] {
		if rest, ok := strings.CutPrefix(spec, "loop "); ok {
			fmt.Println(connectLoop(rest))
			continue
		}
		if rest, ok := strings.CutPrefix(spec, "udpself "); ok {
			fmt.Println(udpSelfLoop(rest))
			continue
		}
		fmt.Println(tryConnect(spec))
	}
	os.Exit(0)
}

func errnoName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

func sockaddr(addr netip.Addr, port int, v6 bool) (int, unix.Sockaddr) {
	if v6 || addr.Is6() {
		return unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: addr.As16()}
	}
	return unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
}

// tryConnect connects (TCP) or sends a datagram (UDP, unconnected) N times
// (default 1) and returns the last result: "ok" or the errno name.
func tryConnect(spec string) string {
	f := strings.Fields(spec)
	if len(f) < 3 {
		return "bad spec"
	}
	n := 1
	if len(f) == 4 {
		n, _ = strconv.Atoi(f[3])
	}
	port, _ := strconv.Atoi(f[2])
	family, sa := sockaddr(netip.MustParseAddr(f[1]), port, false)
	res := ""
	for range n {
		typ := unix.SOCK_STREAM
		if f[0] == "udp" {
			typ = unix.SOCK_DGRAM
		}
		fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return "socket: " + err.Error()
		}
		if typ == unix.SOCK_DGRAM {
			err = unix.Sendto(fd, []byte("x"), 0, sa)
		} else {
			err = unix.Connect(fd, sa)
		}
		unix.Close(fd)
		res = "ok"
		if err != nil {
			res = errnoName(err)
		}
	}
	return res
}

// connectLoop times N UDP connects to ADDR:PORT and prints ns per call.
func connectLoop(spec string) string {
	f := strings.Fields(spec)
	n, _ := strconv.Atoi(f[0])
	port, _ := strconv.Atoi(f[2])
	family, sa := sockaddr(netip.MustParseAddr(f[1]), port, false)
	// Only the connect() calls are timed, in batches of fresh sockets
	// (the descriptor limit). UDP: connect() sends nothing, so the hook's
	// cost is not lost in a TCP handshake's noise.
	var el time.Duration
	fds := make([]int, 0, 500)
	for done := 0; done < n; done += len(fds) {
		fds = fds[:0]
		for range min(cap(fds), n-done) {
			fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err.Error()
			}
			fds = append(fds, fd)
		}
		start := time.Now()
		for _, fd := range fds {
			unix.Connect(fd, sa)
		}
		el += time.Since(start)
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	return strconv.FormatFloat(float64(el.Nanoseconds())/float64(n), 'f', 1, 64)
}

func runConnects(t testing.TB, u *testUser, bin string, specs ...string) []string {
	t.Helper()
	cmd := exec.Command(bin, specs...)
	cmd.Dir = "/"
	cmd.Env = []string{bindHelperEnv + "=connect"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}},
		Pdeathsig:  syscall.SIGKILL,
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("connect helper: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(got) != len(specs) {
		t.Fatalf("connect helper printed %q for %d specs", out, len(specs))
	}
	return got
}

func openConnectHook(t testing.TB) *enforce.ConnectHook {
	t.Helper()
	root, err := platform.FindCgroup2Root()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	h, err := enforce.OpenConnectHook(root)
	if err != nil {
		t.Fatalf("OpenConnectHook: %v", err)
	}
	return h
}

// smtpPolicy holds u to "nothing to port but the local MTA": the rules of
// connect "x" { deny = ["*:PORT"], allow = ["127.0.0.1:*", "[::1]:*"] }.
func smtpPolicy(u *testUser, port uint16, refuse bool) *enforce.ConnectPolicy {
	return &enforce.ConnectPolicy{MinUID: 1000,
		Sets: []enforce.ConnectSet{{Refuse: refuse, Tag: "smtp", Rules: []enforce.ConnectRule{
			{Prefix: netip.MustParsePrefix("127.0.0.1/32"), PortLo: 0, PortHi: 65535},
			{Prefix: netip.MustParsePrefix("::1/128"), PortLo: 0, PortHi: 65535},
			{Deny: true, PortLo: port, PortHi: port},
		}}},
		UIDs: []enforce.BindUIDs{{Lo: u.uid, Hi: u.uid, Set: 0}}}
}

func TestConnectHook(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	other := newTestUser(t) // in no set: never refused
	bin := helperBinary(t)
	port := freePort(t)
	for _, a := range []string{"127.0.0.1", "127.0.0.2"} {
		l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(int(port))))
		if err != nil {
			t.Skipf("listen on %s: %v", a, err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	h := openConnectHook(t)
	defer h.Close()
	if err := h.Update(smtpPolicy(u, port, true)); err != nil {
		t.Fatal(err)
	}
	p := strconv.Itoa(int(port))
	specs := []string{
		"tcp 127.0.0.2 " + p,         // EPERM: denied, not the MTA
		"tcp 127.0.0.1 " + p,         // ok: the MTA
		"tcp ::ffff:127.0.0.2 " + p,  // EPERM: IPv4-mapped is IPv4
		"tcp ::ffff:127.0.0.1 " + p,  // ok
		"udp 127.0.0.2 " + p,         // EPERM: sendmsg4
		"udp ::ffff:127.0.0.2 " + p,  // EPERM: sendmsg6, mapped
		"udp ::1 " + p,               // ok: allowed
		"tcp 127.0.0.2 " + p + " 50", // EPERM, 50 times: one count
	}
	want := []string{"EPERM", "ok", "EPERM", "ok", "EPERM", "EPERM", "ok", "EPERM"}
	got := runConnects(t, u, bin, specs...)
	for i := range specs {
		if got[i] != want[i] {
			t.Errorf("%s as %s: %s, want %s", specs[i], u.name, got[i], want[i])
		}
	}
	// Controls: another port, another uid, root.
	if got := runConnects(t, u, bin, "tcp 127.0.0.2 1"); got[0] == "EPERM" {
		t.Errorf("a port not denied: %s", got[0])
	}
	if got := runConnects(t, other, bin, "tcp 127.0.0.2 "+p); got[0] != "ok" {
		t.Errorf("a uid in no set: connect %s", got[0])
	}
	if got := tryConnect("tcp 127.0.0.2 " + p); got != "ok" {
		t.Errorf("root: connect %s", got)
	}

	counts, err := h.TakeCounts()
	if err != nil {
		t.Fatal(err)
	}
	byWhere := map[string]enforce.ConnectRefusals{}
	for _, c := range counts {
		if c.UID != u.uid {
			t.Errorf("a count for uid %d: %+v", c.UID, c)
		}
		byWhere[c.Where()] = c
	}
	tcp := byWhere["127.0.0.2:"+p+"/tcp"]
	// 1 + 1 (mapped) + 50: the mapped form is counted as IPv4.
	if tcp.Count != 52 || !tcp.Refused || tcp.Set == nil || tcp.Set.Tag != "smtp" || tcp.PID <= 0 || tcp.Boot <= 0 {
		t.Errorf("tcp count = %+v (all: %+v)", tcp, counts)
	}
	if udp := byWhere["127.0.0.2:"+p+"/udp"]; udp.Count != 2 || !udp.Refused {
		t.Errorf("udp count = %+v (all: %+v)", udp, counts)
	}
	if len(byWhere) != 2 {
		t.Errorf("counts: %+v", counts)
	}
	if again, _ := h.TakeCounts(); len(again) != 0 {
		t.Errorf("counts not cleared: %+v", again)
	}

	// Monitor mode: through, and counted as not refused.
	if err := h.Update(smtpPolicy(u, port, false)); err != nil {
		t.Fatal(err)
	}
	if got := runConnects(t, u, bin, "tcp 127.0.0.2 "+p); got[0] != "ok" {
		t.Errorf("monitor mode: connect %s", got[0])
	}
	counts, _ = h.TakeCounts()
	if len(counts) != 1 || counts[0].Refused || counts[0].Count != 1 || counts[0].Set.Tag != "smtp" {
		t.Errorf("monitor counts = %+v", counts)
	}
	// IPv6: a CIDR over all four words; IPv4 is not judged by it.
	v6 := &enforce.ConnectPolicy{MinUID: 1000,
		Sets: []enforce.ConnectSet{{Refuse: true, Tag: "v6", Rules: []enforce.ConnectRule{
			{Deny: true, Prefix: netip.MustParsePrefix("::/64"), PortLo: port, PortHi: port},
		}}},
		UIDs: []enforce.BindUIDs{{Lo: u.uid, Hi: u.uid, Set: 0}}}
	if err := h.Update(v6); err != nil {
		t.Fatal(err)
	}
	got = runConnects(t, u, bin, "tcp ::1 "+p, "udp ::1 "+p, "tcp 127.0.0.2 "+p, "udp ::1 1")
	if want := []string{"EPERM", "EPERM", "ok", "ok"}; !slices.Equal(got, want) {
		t.Errorf("IPv6 deny: %v, want %v", got, want)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := runConnects(t, u, bin, "tcp 127.0.0.2 "+p); got[0] != "ok" {
		t.Errorf("after Close: connect %s", got[0])
	}
}

// BenchmarkConnectHookProgram: what the hook adds to a connect() of a
// customer it holds, the destination allowed by the first rule or by the
// last of 64 (the longest the program runs), against the same calls
// without the hook, in the same run.
func BenchmarkConnectHookProgram(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	holdUsersLock(b)
	u := newTestUser(b)
	bin := helperBinary(b)
	const calls = 20000
	port := uint16(20000 + os.Getpid()%10000)
	spec := fmt.Sprintf("loop %d 127.0.0.1 %d", calls, port)
	run := func() float64 {
		out := runConnects(b, u, bin, spec)
		v, err := strconv.ParseFloat(out[0], 64)
		if err != nil {
			b.Fatalf("connect loop: %s", out[0])
		}
		return v
	}
	root, err := platform.FindCgroup2Root()
	if err != nil {
		b.Skip(err)
	}
	var rules []enforce.ConnectRule
	for i := range 63 {
		rules = append(rules, enforce.ConnectRule{Deny: true, Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16), PortLo: port, PortHi: port})
	}
	rules = append(rules, enforce.ConnectRule{Prefix: netip.MustParsePrefix("127.0.0.1/32"), PortHi: 65535})
	first := &enforce.ConnectPolicy{MinUID: 1000, Sets: []enforce.ConnectSet{{Refuse: true, Rules: rules[63:]}},
		UIDs: []enforce.BindUIDs{{Lo: u.uid, Hi: u.uid}}}
	last := &enforce.ConnectPolicy{MinUID: 1000, Sets: []enforce.ConnectSet{{Refuse: true, Rules: rules}},
		UIDs: []enforce.BindUIDs{{Lo: u.uid, Hi: u.uid}}}
	for b.Loop() {
		var without, withFirst, withLast []float64
		for range 7 {
			without = append(without, run())
			h, err := enforce.OpenConnectHook(root)
			if err != nil {
				b.Fatal(err)
			}
			for _, p := range []*enforce.ConnectPolicy{first, last} {
				if err := h.Update(p); err != nil {
					b.Fatal(err)
				}
				if p == first {
					withFirst = append(withFirst, run())
				} else {
					withLast = append(withLast, run())
				}
			}
			h.Close()
		}
		med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
		b.ReportMetric(med(without), "ns/connect-without-hook")
		b.ReportMetric(med(withFirst), "ns/connect-allowed-1st")
		b.ReportMetric(med(withLast), "ns/connect-allowed-64th")
		b.ReportMetric(med(withFirst)-med(without), "ns-added-1st")
		b.ReportMetric(med(withLast)-med(without), "ns-added-64th")
	}
}
