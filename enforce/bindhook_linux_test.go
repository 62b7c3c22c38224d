//go:build linux

package enforce_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// bindHelperEnv makes the test binary a helper that tries the binds given
// as arguments ("tcp 0.0.0.0 8080", "udp6 ::1 53") and prints one result
// per bind: "ok" or the errno name.
const bindHelperEnv = "GUARDD_BINDHOOK_TEST_HELPER"

func init() {
	if os.Getenv(bindHelperEnv) != "bind" {
		return
	}
	lim := unix.Rlimit{Cur: 64, Max: 64} // the safety net first
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "helper: setrlimit:", err)
		os.Exit(3)
	}
	for _, spec := range os.Args[1:] {
		if rest, ok := strings.CutPrefix(spec, "listenloop "); ok {
			fmt.Println(listenLoop(rest))
			continue
		}
		fmt.Println(tryBind(spec))
	}
	os.Exit(0)
}

// tryBind binds a fresh socket as spec says and closes it. A spec
// "PROTO ADDR PORT listen" listens after the bind, and an ADDR of "-"
// skips the bind (listen() then binds an ephemeral port itself). A failed
// listen() prints "listen-ERRNO".
func tryBind(spec string) string {
	f := strings.Fields(spec)
	if len(f) != 3 && (len(f) != 4 || f[3] != "listen") {
		return "bad spec"
	}
	typ, proto := unix.SOCK_STREAM, 0
	switch {
	case strings.HasPrefix(f[0], "udp"):
		typ = unix.SOCK_DGRAM
	case strings.HasPrefix(f[0], "mptcp"):
		proto = unix.IPPROTO_MPTCP
	}
	family := unix.AF_INET
	if strings.HasSuffix(f[0], "6") {
		family = unix.AF_INET6
	}
	port, _ := strconv.Atoi(f[2])
	var sa unix.Sockaddr
	if f[1] != "-" {
		addr := netip.MustParseAddr(f[1])
		if addr.Is4() {
			sa = &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
		} else {
			family = unix.AF_INET6
			sa = &unix.SockaddrInet6{Port: port, Addr: addr.As16()}
		}
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return "socket: " + err.Error()
	}
	defer unix.Close(fd)
	name := func(err error) string {
		var errno unix.Errno
		if errors.As(err, &errno) {
			return unix.ErrnoName(errno)
		}
		return err.Error()
	}
	if sa != nil {
		if err := unix.Bind(fd, sa); err != nil {
			return name(err)
		}
	}
	if len(f) == 4 {
		if err := unix.Listen(fd, 1); err != nil {
			return "listen-" + name(err)
		}
	}
	return "ok"
}

// runBinds runs the bind helper as u and returns its results.
func runBinds(t testing.TB, u *testUser, bin string, specs ...string) []string {
	t.Helper()
	cmd := exec.Command(bin, specs...)
	cmd.Dir = "/"
	cmd.Env = []string{bindHelperEnv + "=bind"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}},
		Pdeathsig:  syscall.SIGKILL,
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bind helper: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(got) != len(specs) {
		t.Fatalf("bind helper printed %q for %d binds", out, len(specs))
	}
	return got
}

// freePort returns a TCP and UDP port that was free a moment ago.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for try := 0; try < 100; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			u.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free port")
	return 0
}

func openHook(t *testing.T, pinDir string) *enforce.BindHook {
	t.Helper()
	root, err := platform.FindCgroup2Root()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	h, err := enforce.OpenBindHook(enforce.BindHookOptions{CgroupPath: root, PinDir: pinDir})
	if err != nil {
		t.Fatalf("OpenBindHook: %v", err)
	}
	return h
}

// collector gathers refusals from ReadRefusals.
type collector struct {
	mu   sync.Mutex
	got  []enforce.BindRefusal
	done chan struct{}
}

func collect(h *enforce.BindHook) *collector {
	c := &collector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		h.ReadRefusals(func(r enforce.BindRefusal) {
			c.mu.Lock()
			c.got = append(c.got, r)
			c.mu.Unlock()
		})
	}()
	return c
}

// wait returns the first refusal of uid on port, waiting up to 10 s.
func (c *collector) wait(t *testing.T, uid uint32, port uint16) enforce.BindRefusal {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		c.mu.Lock()
		for _, r := range c.got {
			if r.UID == uid && r.Port == port {
				c.mu.Unlock()
				return r
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no refusal of uid %d on port %d reported", uid, port)
	return enforce.BindRefusal{}
}

func TestBindHook(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	other := newTestUser(t) // in no set: never refused
	bin := helperBinary(t)
	loopPort, rangePort, v6Port, monitorPort := freePort(t), freePort(t), freePort(t), freePort(t)

	h := openHook(t, "")
	defer h.Close(false)
	c := collect(h)
	pol := &enforce.BindPolicy{
		MinUID: 1000,
		Sets: []enforce.BindSet{{Refuse: true, Tag: "customers", Allow: []enforce.BindAllow{
			{Addr: netip.MustParseAddr("127.0.0.1"), PortLo: loopPort, PortHi: loopPort},
			{PortLo: rangePort, PortHi: rangePort},
			{Addr: netip.MustParseAddr("::1"), PortLo: v6Port, PortHi: v6Port},
		}}},
		UIDs: []enforce.BindUIDs{{Lo: u.uid, Hi: u.uid, Set: 0}},
	}
	if err := h.Update(pol); err != nil {
		t.Fatal(err)
	}
	p := func(n uint16) string { return strconv.Itoa(int(n)) }
	specs := []string{
		"tcp 0.0.0.0 8080",                     // EPERM: not allowed
		"tcp 127.0.0.1 " + p(loopPort),         // ok: allowed on loopback
		"tcp 0.0.0.0 " + p(loopPort),           // EPERM: allowed on loopback only
		"udp 0.0.0.0 " + p(rangePort),          // ok: any address
		"tcp6 :: " + p(rangePort),              // ok: any address, IPv6 too
		"udp6 ::1 " + p(v6Port),                // ok
		"udp6 ::1 8080",                        // EPERM
		"tcp6 ::ffff:127.0.0.1 " + p(loopPort), // ok: an IPv4-mapped bind is an IPv4 bind
		"tcp6 ::ffff:127.0.0.1 8080",           // EPERM
		"tcp 0.0.0.0 0",                        // ok: ephemeral
		"udp6 :: 0",                            // ok: ephemeral
	}
	want := []string{"EPERM", "ok", "EPERM", "ok", "ok", "ok", "EPERM", "ok", "EPERM", "ok", "ok"}
	got := runBinds(t, u, bin, specs...)
	for i := range specs {
		if got[i] != want[i] {
			t.Errorf("%s as %s: %s, want %s", specs[i], u.name, got[i], want[i])
		}
	}
	if got := runBinds(t, other, bin, "tcp 127.0.0.1 "+p(monitorPort)); got[0] != "ok" {
		t.Errorf("a uid in no set: bind %s", got[0])
	}
	if got := tryBind("tcp 127.0.0.1 " + p(monitorPort)); got != "ok" {
		t.Errorf("root: bind %s", got)
	}

	r := c.wait(t, u.uid, 8080)
	if !r.Refused || r.Set == nil || r.Set.Tag != "customers" || r.PID <= 0 || r.Time.IsZero() {
		t.Errorf("refusal = %+v", r)
	}
	// The refusal's time is the boot clock of process start times: the
	// helper started before its bind, a process started now after it.
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &now)
	if r.Boot <= 0 || r.Boot > time.Duration(now.Nano()) || !procID(t, os.Getpid()).StartedBy(r.Boot) {
		t.Errorf("refusal at %v (boot clock now %v)", r.Boot, time.Duration(now.Nano()))
	}
	if (platform.ProcID{StartTime: uint64(now.Nano()/1e7) + 100}).StartedBy(r.Boot) {
		t.Error("a process started after the refusal passes for its maker")
	}
	if w := r.Where(); w != "0.0.0.0:8080/tcp" && w != "[::1]:8080/udp" && w != "127.0.0.1:8080/tcp" {
		t.Errorf("first refusal on 8080 is %s", w)
	}

	// Monitor mode: reported, not refused. A reload swaps the sets in place.
	pol2 := &enforce.BindPolicy{MinUID: 1000,
		Sets: []enforce.BindSet{{Refuse: false, Tag: "monitor"}},
		UIDs: []enforce.BindUIDs{{Lo: u.uid, Hi: u.uid, Set: 0}}}
	if err := h.Update(pol2); err != nil {
		t.Fatal(err)
	}
	if got := runBinds(t, u, bin, "tcp 127.0.0.1 "+p(monitorPort)); got[0] != "ok" {
		t.Errorf("monitor mode: bind %s", got[0])
	}
	if r := c.wait(t, u.uid, monitorPort); r.Refused || r.Set == nil || r.Set.Tag != "monitor" {
		t.Errorf("monitor refusal = %+v", r)
	}

	// min_uid above the uid: never refused, whatever the sets say.
	pol3 := &enforce.BindPolicy{MinUID: u.uid + 1, Sets: pol.Sets, UIDs: pol.UIDs}
	if err := h.Update(pol3); err != nil {
		t.Fatal(err)
	}
	if got := runBinds(t, u, bin, "tcp 127.0.0.1 8080"); got[0] != "ok" && got[0] != "EADDRINUSE" {
		t.Errorf("uid below min_uid: bind %s", got[0])
	}
	if n := h.Lost(); n != 0 {
		t.Errorf("%d refusals lost", n)
	}
	if err := h.Close(false); err != nil {
		t.Fatal(err)
	}
	<-c.done
}

// TestBindHookPinned: a pinned hook outlives its BindHook (guardd
// stopping), and the next one takes it over, policy and all.
func TestBindHookPinned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	bin := helperBinary(t)
	// A bpf filesystem of the test's own: unmounting it releases
	// whatever is still pinned there, whatever happens to the test.
	mnt := t.TempDir()
	if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
		t.Skipf("cannot mount a bpf filesystem: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	pin := filepath.Join(mnt, "guardd")

	if _, err := enforce.OpenBindHook(enforce.BindHookOptions{CgroupPath: "/nonexistent", PinDir: t.TempDir()}); err == nil ||
		!strings.Contains(err.Error(), "not on a bpf filesystem") {
		t.Errorf("pinning outside bpffs: %v", err)
	}

	refuse := &enforce.BindPolicy{MinUID: 1000,
		Sets: []enforce.BindSet{{Refuse: true}},
		UIDs: []enforce.BindUIDs{{Lo: u.uid, Hi: u.uid}}}
	h := openHook(t, pin)
	if err := h.Update(refuse); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(true); err != nil { // guardd stops, hooks stay
		t.Fatal(err)
	}
	for _, name := range []string{"link_bind4", "link_bind6", "guardd_uids", "guardd_sets", "guardd_events"} {
		if _, err := os.Stat(filepath.Join(pin, name)); err != nil {
			t.Errorf("not pinned: %v", err)
		}
	}
	if got := runBinds(t, u, bin, "tcp 0.0.0.0 8080"); got[0] != "EPERM" {
		t.Errorf("between two guardds: bind %s, want EPERM", got[0])
	}

	// The next guardd takes over: the refusal made meanwhile waits in the
	// pinned ring buffer.
	h = openHook(t, pin)
	defer h.Close(false)
	c := collect(h)
	if r := c.wait(t, u.uid, 8080); !r.Refused {
		t.Errorf("refusal made while no guardd ran: %+v", r)
	}
	if got := runBinds(t, u, bin, "tcp 0.0.0.0 8080"); got[0] != "EPERM" {
		t.Errorf("after take-over, before update: bind %s, want EPERM", got[0])
	}
	port := freePort(t)
	allow := &enforce.BindPolicy{MinUID: 1000,
		Sets: []enforce.BindSet{{Refuse: true, Allow: []enforce.BindAllow{{PortLo: port, PortHi: port}}}},
		UIDs: []enforce.BindUIDs{{Lo: u.uid, Hi: u.uid}}}
	if err := h.Update(allow); err != nil {
		t.Fatal(err)
	}
	if got := runBinds(t, u, bin, "tcp 127.0.0.1 "+strconv.Itoa(int(port)), "tcp 0.0.0.0 8080"); got[0] != "ok" || got[1] != "EPERM" {
		t.Errorf("after update: %v, want ok EPERM", got)
	}
	if err := h.Close(false); err != nil { // the admin no longer wants them
		t.Fatal(err)
	}
	<-c.done
	if ents, _ := os.ReadDir(pin); len(ents) != 0 {
		t.Errorf("still pinned after Close(false): %v", ents)
	}
	if got := runBinds(t, u, bin, "tcp 127.0.0.1 8080"); got[0] == "EPERM" {
		t.Error("still refused after the hook was closed unpinned")
	}
}

// TestListenHook: listen() is refused where bind() never ran (the kernel
// binds an ephemeral port inside listen) or bound port 0, for the uids the
// policy holds only; a set that allows autobinding, other uids and root
// listen.
func TestListenHook(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	holdUsersLock(t)
	u, other := newTestUser(t), newTestUser(t)
	bin := helperBinary(t)
	port := freePort(t)
	p := strconv.Itoa(int(port))

	h := openHook(t, "")
	defer h.Close(false)
	if err := h.ListenErr(); err != nil {
		t.Skipf("no listen hook here: %v", err)
	}
	c := collect(h)
	pol := &enforce.BindPolicy{MinUID: 1000,
		Sets: []enforce.BindSet{{Refuse: true, Tag: "customers", Allow: []enforce.BindAllow{
			{Addr: netip.MustParseAddr("127.0.0.1"), PortLo: port, PortHi: port},
		}}},
		UIDs: []enforce.BindUIDs{{Lo: u.uid, Hi: u.uid, Set: 0}}}
	if err := h.Update(pol); err != nil {
		t.Fatal(err)
	}
	specs := []string{
		"tcp - 0 listen",         // unbound: autobind inside listen()
		"tcp6 - 0 listen",        // the same, IPv6
		"tcp 127.0.0.1 0 listen", // bind(port 0) passes the bind hook; listen() sees the ephemeral port
		"tcp 127.0.0.1 " + p + " listen",
		"tcp6 ::ffff:127.0.0.1 " + p + " listen", // IPv4-mapped: the IPv4 address
		"tcp6 ::1 0 listen",
	}
	want := []string{"listen-EPERM", "listen-EPERM", "listen-EPERM", "ok", "ok", "listen-EPERM"}
	got := runBinds(t, u, bin, specs...)
	for i := range specs {
		if got[i] != want[i] {
			t.Errorf("%s as %s: %s, want %s", specs[i], u.name, got[i], want[i])
		}
	}
	// MPTCP where the kernel has it: the same socket hook.
	if got := runBinds(t, u, bin, "mptcp - 0 listen"); got[0] != "listen-EPERM" && !strings.HasPrefix(got[0], "socket:") {
		t.Errorf("mptcp unbound listen: %s, want listen-EPERM", got[0])
	}
	// Controls: a uid in no set, and root.
	if got := runBinds(t, other, bin, "tcp - 0 listen", "tcp6 - 0 listen"); got[0] != "ok" || got[1] != "ok" {
		t.Errorf("a uid in no set: %v", got)
	}
	if got := tryBind("tcp - 0 listen"); got != "ok" {
		t.Errorf("root: %s", got)
	}
	r := c.wait(t, u.uid, 0)
	if !r.Listen || !r.Refused || r.Set == nil || r.Set.Tag != "customers" || r.PID <= 0 || r.Proto != platform.TCP {
		t.Errorf("refusal = %+v", r)
	}

	// A set that covers the ephemeral range allows autobinding.
	pol.Sets[0].Autobind = true
	if err := h.Update(pol); err != nil {
		t.Fatal(err)
	}
	if got := runBinds(t, u, bin, "tcp - 0 listen"); got[0] != "ok" {
		t.Errorf("autobind allowed: %s", got[0])
	}
}

// listenLoop is "N PORT": N times a fresh TCP socket bound to
// 127.0.0.1:PORT and listen(), only listen timed; it returns the mean in
// ns, or the first error.
func listenLoop(spec string) string {
	var n, port int
	if _, err := fmt.Sscan(spec, &n, &port); err != nil {
		return "bad spec"
	}
	var spent time.Duration
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err.Error()
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			unix.Close(fd)
			return "bind " + err.Error()
		}
		start := time.Now()
		err = unix.Listen(fd, 16)
		spent += time.Since(start)
		unix.Close(fd)
		if err != nil {
			return "listen " + err.Error()
		}
	}
	return strconv.FormatInt(spent.Nanoseconds()/int64(n), 10)
}

// BenchmarkListenHookProgram: what the listen program adds to a held
// customer's listen() of an allowed port (the 1st and the 64th entry of
// its allow list), against no hook, in the same run: rounds alternate,
// medians of 5 rounds of 20,000 calls. Where the kernel does not run the
// BPF LSM it reports only the figure without.
//
//	go test -run '^$' -bench ListenHookProgram -benchtime 1x ./enforce/
func BenchmarkListenHookProgram(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	holdUsersLock(b)
	u := newTestUser(b)
	bin := helperBinary(b)
	const calls = 20000
	port := uint16(20000 + os.Getpid()%10000)
	spec := fmt.Sprintf("listenloop %d %d", calls, port)
	run := func() float64 {
		out := runBinds(b, u, bin, spec)
		v, err := strconv.ParseFloat(out[0], 64)
		if err != nil {
			b.Fatalf("listen loop: %s", out[0])
		}
		return v
	}
	root, err := platform.FindCgroup2Root()
	if err != nil {
		b.Skip(err)
	}
	var allow []enforce.BindAllow
	for i := range 63 {
		allow = append(allow, enforce.BindAllow{Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), PortLo: port, PortHi: port})
	}
	allow = append(allow, enforce.BindAllow{Addr: netip.MustParseAddr("127.0.0.1"), PortLo: port, PortHi: port})
	first := &enforce.BindPolicy{MinUID: 1000, Sets: []enforce.BindSet{{Refuse: true, Allow: allow[63:]}},
		UIDs: []enforce.BindUIDs{{Lo: u.uid, Hi: u.uid}}}
	last := &enforce.BindPolicy{MinUID: 1000, Sets: []enforce.BindSet{{Refuse: true, Allow: allow}},
		UIDs: []enforce.BindUIDs{{Lo: u.uid, Hi: u.uid}}}
	for b.Loop() {
		var without, withFirst, withLast []float64
		hooked := true
		for range 5 {
			without = append(without, run())
			h, err := enforce.OpenBindHook(enforce.BindHookOptions{CgroupPath: root})
			if err != nil {
				b.Fatal(err)
			}
			if h.ListenErr() != nil {
				b.Logf("no listen hook: %v", h.ListenErr())
				hooked = false
				h.Close(false)
				continue
			}
			for _, p := range []*enforce.BindPolicy{first, last} {
				if err := h.Update(p); err != nil {
					b.Fatal(err)
				}
				if p == first {
					withFirst = append(withFirst, run())
				} else {
					withLast = append(withLast, run())
				}
			}
			h.Close(false)
		}
		med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
		b.ReportMetric(med(without), "ns/listen-without-hook")
		if hooked {
			b.ReportMetric(med(withFirst), "ns/listen-allowed-1st")
			b.ReportMetric(med(withLast), "ns/listen-allowed-64th")
			b.ReportMetric(med(withFirst)-med(without), "ns-added-1st")
			b.ReportMetric(med(withLast)-med(without), "ns-added-64th")
		}
	}
}

// TestKernelSockOffsets: the listen program's offsets, from this kernel's
// BTF, are where the socket's fields are: struct sock begins with its
// sock_common, whose family, port and addresses come first.
func TestKernelSockOffsets(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("no kernel BTF")
	}
	o, err := enforce.KernelSockOffsets()
	if err != nil {
		t.Fatal(err)
	}
	if o.Family != 16 || o.Num != 14 || o.RcvSaddr != 4 || o.V6RcvSaddr < 24 || o.SocketSK <= 0 || o.SkType <= 0 || o.SkProtocol <= 0 {
		t.Errorf("offsets %+v", o)
	}
}
