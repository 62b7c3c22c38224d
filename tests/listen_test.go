//go:build linux

package tests

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Listeners: a customer's own servers are refused at bind() by the kernel
// (block = "bind") or killed within a tick (block = "kill", or no BPF).
// Everything is on loopback or the wildcard address of throwaway users'
// sockets; each test's guardd holds only its own users to its listen
// blocks, so the BPF programs of parallel tests never touch each other.

// listenBlock returns a listen block "c" on class "c".
func listenBlock(block string, allow ...string) string {
	var quoted []string
	for _, a := range allow {
		quoted = append(quoted, strconv.Quote(a))
	}
	return fmt.Sprintf("listen \"c\" {\n  class = \"c\"\n  allow = [%s]\n  block = %q\n}\n\n", strings.Join(quoted, ", "), block)
}

// testPort returns a port free for TCP and UDP on every address, below the
// kernel's ephemeral range (guardd does not judge unconnected UDP sockets
// on ephemeral ports: clients get those from sendto(2) without a bind).
func testPort(t testing.TB) int {
	t.Helper()
	for try := 0; try < 200; try++ {
		port := 20000 + rand.IntN(12000)
		if portFree(port) {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func portFree(port int) bool {
	for _, network := range []string{"tcp", "udp"} {
		var c interface{ Close() error }
		var err error
		if network == "tcp" {
			c, err = net.Listen("tcp", ":"+strconv.Itoa(port))
		} else {
			c, err = net.ListenPacket("udp", ":"+strconv.Itoa(port))
		}
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// waitHook waits until guardd says whether its bind hook is attached, and
// skips the test when it is not (a kernel without cgroup BPF).
func waitHook(t testing.TB, g *Guardd) {
	t.Helper()
	l := g.WaitLog(t, func(l LogLine) bool {
		return strings.HasPrefix(l.Msg, "bind hook attached") || strings.HasPrefix(l.Msg, "bind hook unavailable")
	}, Deadline)
	if strings.HasPrefix(l.Msg, "bind hook unavailable") {
		t.Skipf("no bind hook here: %v", l.Attrs["why"])
	}
}

// listen starts an offender that binds (and listens on) addr:port as u.
func listen(t *testing.T, u *User, proto, addr string, port int, extra ...string) *Offender {
	t.Helper()
	return StartOffender(t, u, append([]string{"listen", proto, addr, strconv.Itoa(port)}, extra...)...)
}

// listenLater is listen for an offender that guardd kills: it binds only
// once the harness has read its identity (StartOffender reads /proc after
// "ready"; a listener killed before that would fail the harness, not
// guardd). Wait for "listening" before expecting anything of guardd.
func listenLater(t testing.TB, u *User, proto, addr string, port int) *Offender {
	t.Helper()
	o := StartOffender(t, u, "listen", proto, addr, strconv.Itoa(port), "onsignal")
	if err := o.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	return o
}

// refusal matches the audit line of a refused bind of o.
func refusal(o *Offender, outcome string, port int) func(Event) bool {
	return func(ev Event) bool {
		return ev.Action == "refuse-bind" && int(ev.PID) == o.PID && ev.Outcome == outcome && int(ev.Port) == port
	}
}

// syncTicks returns once guardd has completed a tick that began after
// this call: it waits for the journal line of a bind refused after the
// line of an earlier one. Whatever was listening when it is called was
// seen (and judged) by that tick.
func syncTicks(t *testing.T, g *Guardd, u *User) {
	t.Helper()
	for range 2 {
		o := listen(t, u, "tcp", "127.0.0.1", 8080)
		o.WaitOutput(t, "bind-error EPERM", Deadline)
		g.WaitAudit(t, refusal(o, "done", 8080), Deadline)
	}
}

func TestListenBindRefusedByKernel(t *testing.T) {
	t.Parallel()
	u, bystander := NewUser(t), NewUser(t)
	allowed := testPort(t)
	g := StartGuardd(t, Class(u)+listenBlock("bind", "127.0.0.1:"+strconv.Itoa(allowed)))
	waitHook(t, g)

	ok := listen(t, u, "tcp", "127.0.0.1", allowed)
	ok.WaitOutput(t, "listening", Deadline)
	for _, tc := range []struct{ proto, addr string }{
		{"tcp", "0.0.0.0"}, {"udp", "0.0.0.0"}, {"tcp", "::1"}, {"udp", "::1"}, {"tcp", "::"},
	} {
		o := listen(t, u, tc.proto, tc.addr, 8080)
		o.WaitOutput(t, "bind-error EPERM", Deadline)
		ev := g.WaitAudit(t, refusal(o, "done", 8080), Deadline)
		if ev.UID != u.UID || ev.User != u.Name || ev.Exe != offenderBin || ev.Proto != tc.proto || ev.Addr != tc.addr ||
			ev.Rule != "c" || ev.RuleAt == "" || ev.Mode != "enforce" || ev.Count != 1 || ev.StartTime != o.ID.StartTime {
			t.Errorf("refusal of %s %s:8080: %+v", tc.proto, tc.addr, ev)
		}
	}
	// The allowed port works on the allowed address only.
	wrongAddr := listen(t, u, "tcp", "0.0.0.0", allowed)
	wrongAddr.WaitOutput(t, "bind-error EPERM", Deadline)

	// Another customer whom this policy does not name, root, and a
	// customer's outgoing connection are not touched.
	free := testPort(t)
	other := listen(t, bystander, "tcp", "127.0.0.1", free)
	other.WaitOutput(t, "listening", Deadline)
	if err := rootBind(8080); errors.Is(err, unix.EPERM) {
		t.Errorf("root's bind(8080): %v", err)
	}
	srv, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	client := StartOffender(t, u, "connect", "127.0.0.1", strconv.Itoa(srv.Addr().(*net.TCPAddr).Port))
	client.WaitOutput(t, "connected", Deadline)

	syncTicks(t, g, u)
	for _, o := range []*Offender{ok, other, client} {
		if !Alive(o.ID) {
			t.Errorf("offender %v (%v) was killed", o.ID, o.Argv)
		}
	}
	for _, ev := range g.Audit(t) {
		if ev.Action == "kill" || ev.UID == bystander.UID {
			t.Errorf("unexpected audit line: %+v", ev)
		}
	}
}

// rootBind binds 127.0.0.1:port as root (this test process) and closes.
func rootBind(port int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	return unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
}

// killed waits for the kill line of o's listener on port and for o to be
// gone, and checks the line.
func killed(t *testing.T, g *Guardd, u *User, o *Offender, proto, addr string, port int) {
	t.Helper()
	ev := g.WaitAudit(t, func(ev Event) bool {
		return ev.Action == "kill" && int(ev.PID) == o.PID && ev.Outcome == "done"
	}, Deadline)
	WaitGone(t, o.ID, Deadline)
	if ev.UID != u.UID || ev.Exe != offenderBin || ev.Signal != "KILL" || int(ev.Port) != port || ev.Proto != proto ||
		ev.Addr != addr || ev.Rule != "listen:c" || ev.StartTime != o.ID.StartTime || !strings.Contains(ev.Reason, "does not allow") {
		t.Errorf("kill line: %+v", ev)
	}
}

func TestListenKillMode(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	allowed, p1, p2, p3 := testPort(t), testPort(t), testPort(t), testPort(t)
	g := StartGuardd(t, Class(u)+listenBlock("kill", "*:"+strconv.Itoa(allowed)))
	ok := listen(t, u, "tcp", "0.0.0.0", allowed)
	ok.WaitOutput(t, "listening", Deadline)
	ok6 := listen(t, u, "udp", "::", allowed)
	ok6.WaitOutput(t, "listening", Deadline)

	for _, tc := range []struct {
		proto, addr string
		port        int
	}{{"tcp", "0.0.0.0", p1}, {"udp", "127.0.0.1", p2}, {"tcp", "::1", p3}} {
		o := listenLater(t, u, tc.proto, tc.addr, tc.port)
		o.WaitOutput(t, "listening", Deadline) // kill mode: the kernel lets it bind
		killed(t, g, u, o, tc.proto, tc.addr, tc.port)
	}
	// The allowed listeners were seen by every tick that killed.
	if !Alive(ok.ID) || !Alive(ok6.ID) {
		t.Error("an allowed listener was killed")
	}
	if lines := g.Audit(t); len(lines) != 3 {
		t.Errorf("%d audit lines, want the 3 kills", len(lines))
	}
}

// TestListenTwoBlocksOneKill: a user governed by two listen blocks, one
// monitoring and one enforcing, may listen where either allows; a
// listener neither allows is killed once, by the enforcing block's rule
// (listen:k), with no would-do line from the other. Control: the
// listeners each block allows stay.
func TestListenTwoBlocksOneKill(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	pm, pk, bad := testPort(t), testPort(t), testPort(t)
	body := Class(u) + fmt.Sprintf(`listen "m" {
  class = "c"
  allow = ["*:%d"]
  block = "kill"
  mode  = "monitor"
}

listen "k" {
  class = "c"
  allow = ["*:%d"]
  block = "kill"
}
`, pm, pk)
	g := StartGuardd(t, body)
	okM := listen(t, u, "tcp", "0.0.0.0", pm)
	okM.WaitOutput(t, "listening", Deadline)
	okK := listen(t, u, "tcp", "0.0.0.0", pk)
	okK.WaitOutput(t, "listening", Deadline)
	o := listenLater(t, u, "tcp", "127.0.0.1", bad)
	o.WaitOutput(t, "listening", Deadline)
	ev := g.WaitAudit(t, Action("listen:k", "kill", "done", o.PID), Deadline)
	WaitGone(t, o.ID, Deadline)
	if ev.Mode != "enforce" || int(ev.Port) != bad || !strings.Contains(ev.Reason, `none of listen "m", "k" allows`) {
		t.Errorf("kill line: %+v", ev)
	}
	if !Alive(okM.ID) || !Alive(okK.ID) {
		t.Error("a listener one of the blocks allows was killed")
	}
	for _, l := range g.Audit(t) {
		if l.Rule != "listen:k" || int(l.PID) != o.PID {
			t.Errorf("another line: %+v", l)
		}
	}
}

// TestListenProtectedHolderSkipped: a protected process (protect { exes },
// started by a root parent that runs a protected executable, as a service
// starts its workers) holding a listener its block refuses is left alone
// and said once, skipped, under the block's rule name. Control: the same
// binary started by the customer's own shell is not protected and is
// killed; the protected holder's line stays one across those ticks.
func TestListenProtectedHolderSkipped(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	p1, p2 := testPort(t), testPort(t)
	prot := filepath.Join(ExecDir(t), "protected-listener")
	CopyFile(t, offenderBin, prot, 0o755)
	// The reaper is root and runs offenderBin, protected too: the service
	// master of this test.
	body := Class(u) + fmt.Sprintf("protect {\n  exes = [%q, %q]\n}\n\n", offenderBin, prot) + listenBlock("kill")
	g := StartGuardd(t, body)
	held := StartOffenderSpec(t, u, OffenderSpec{Exe: prot, Reaped: true, Args: []string{"listen", "tcp", "127.0.0.1", strconv.Itoa(p1)}})
	held.WaitOutput(t, "listening", Deadline)
	ev := g.WaitAudit(t, func(ev Event) bool { return ev.Action == "kill" && int(ev.PID) == held.PID }, Deadline)
	if ev.Outcome != "skipped" || ev.Rule != "listen:c" || int(ev.Port) != p1 || !strings.Contains(ev.Reason, "protected") {
		t.Fatalf("line of a protected holder: %+v", ev)
	}
	shell := StartOffender(t, u, "exec", "--", "/bin/bash", "-c", prot+" listen tcp 127.0.0.1 "+strconv.Itoa(p2)+"; true")
	own := childWithExe(t, shell.PID, prot)
	g.WaitAudit(t, Action("listen:c", "kill", "done", own), Deadline)
	if !Alive(held.ID) {
		t.Error("the protected holder was killed")
	}
	n := 0
	for _, l := range g.Audit(t) {
		if int(l.PID) == held.PID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d lines for the protected holder, want 1 (said once)", n)
	}
}

// TestListenWithoutBPF: block = "bind" where the kernel cannot refuse
// falls back to detect-and-kill, and says so.
func TestListenWithoutBPF(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	port := testPort(t)
	g := StartGuarddConfig(t, Config{Body: Class(u) + listenBlock("bind"), Env: []string{"GUARDD_NO_BPF=1"}})
	g.WaitLog(t, Msg("bind hook unavailable"), Deadline)
	o := listenLater(t, u, "tcp", "0.0.0.0", port)
	o.WaitOutput(t, "listening", Deadline)
	killed(t, g, u, o, "tcp", "0.0.0.0", port)
}

// TestListenerOpenedBeforeStart: a server already listening when guardd
// starts, with its socket shared with a child (as Apache's workers
// inherit it), is closed at start-up: both processes are killed.
func TestListenerOpenedBeforeStart(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	port := testPort(t)
	o := listen(t, u, "tcp", "0.0.0.0", port, "share")
	o.WaitOutput(t, "listening", Deadline)
	var childPID int
	for _, line := range o.Output() {
		if rest, ok := strings.CutPrefix(line, "child "); ok {
			childPID, _ = strconv.Atoi(rest)
		}
	}
	child, err := ReadStat(childPID)
	if childPID == 0 || err != nil {
		t.Fatalf("no child: %q", o.Output())
	}
	childID := ProcID{PID: int32(childPID), StartTime: child.StartTime}

	g := StartGuardd(t, Class(u)+listenBlock("bind"))
	killed(t, g, u, o, "tcp", "0.0.0.0", port)
	g.WaitAudit(t, Action("listen:c", "kill", "done", childPID), Deadline)
	WaitGone(t, childID, Deadline)
	if !Eventually(Deadline, func() bool { return portFree(port) }) {
		t.Errorf("port %d still taken after both holders were killed", port)
	}
}

// TestListenReloadAllowsPort: a reload that adds a port to the allow list
// lets the next bind succeed, without a restart (the BPF maps are updated
// in place).
func TestListenReloadAllowsPort(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	port := testPort(t)
	g := StartGuardd(t, Class(u)+listenBlock("bind"))
	waitHook(t, g)
	before := listen(t, u, "tcp", "127.0.0.1", port)
	before.WaitOutput(t, "bind-error EPERM", Deadline)
	g.WaitAudit(t, refusal(before, "done", port), Deadline)

	g.SetPolicy(t, Class(u)+listenBlock("bind", "127.0.0.1:"+strconv.Itoa(port)))
	g.WaitLog(t, Msg("policy reloaded"), Deadline)
	after := listen(t, u, "tcp", "127.0.0.1", port)
	after.WaitOutput(t, "listening", Deadline)
	syncTicks(t, g, u)
	if !Alive(after.ID) {
		t.Error("the listener on the newly allowed port was killed")
	}
	if n := strings.Count(g.Log(), "bind hook attached"); n != 1 {
		t.Errorf("the hook was attached %d times, want once: a reload updates it in place", n)
	}
}

// TestListenMonitor: in monitor mode the bind goes through and the audit
// log says what would have happened.
func TestListenMonitor(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	port := testPort(t)
	g := StartGuardd(t, Class(u)+listenBlock("bind"), "--mode", "monitor")
	waitHook(t, g)
	o := listen(t, u, "tcp", "0.0.0.0", port)
	o.WaitOutput(t, "listening", Deadline)
	ref := g.WaitAudit(t, refusal(o, "would-do", port), Deadline)
	kill := g.WaitAudit(t, Action("listen:c", "kill", "would-do", o.PID), Deadline)
	if ref.Mode != "monitor" || kill.Mode != "monitor" || !strings.HasPrefix(ref.Reason, "would refuse") {
		t.Errorf("monitor lines: %+v / %+v", ref, kill)
	}
	syncTicksMonitor(t, g, u)
	if !Alive(o.ID) {
		t.Error("monitor mode killed the listener")
	}
	n := 0
	for _, ev := range g.Audit(t) {
		if ev.Action == "kill" && int(ev.PID) == o.PID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d would-do kill lines for one listener, want 1 (said once)", n)
	}
}

// syncTicksMonitor is syncTicks for a monitoring guardd: the binds go
// through, so it waits for their would-do lines.
func syncTicksMonitor(t *testing.T, g *Guardd, u *User) {
	t.Helper()
	for range 2 {
		o := listen(t, u, "tcp", "127.0.0.1", 0)
		o.WaitOutput(t, "listening", Deadline)
		g.WaitAudit(t, Action("listen:c", "kill", "would-do", o.PID), Deadline)
	}
}

// TestListenerVariables: proc.listen_ports and user.listeners, without
// any listen block.
func TestListenerVariables(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	p1, p2 := testPort(t), testPort(t)
	server := listen(t, u, "tcp", "127.0.0.1", p1)
	server.WaitOutput(t, "listening", Deadline)
	udp := listen(t, u, "udp", "::1", p2)
	udp.WaitOutput(t, "listening", Deadline)
	quiet := StartOffender(t, u, "sleep")
	g := StartGuardd(t, Class(u)+fmt.Sprintf(`rule "server" {
  class = "c"
  when  = contains(proc.listen_ports, %d) || contains(proc.listen_ports, %d)
  report {}
}

rule "listeners" {
  class = "c"
  when  = user.listeners >= 2
  report {}
}
`, p1, p2))
	ev := g.WaitAudit(t, Action("server", "report", "done", server.PID), Deadline)
	if got := fmt.Sprint(ev.Values["proc.listen_ports"]); got != fmt.Sprintf("[%d]", p1) {
		t.Errorf("proc.listen_ports of the TCP server = %s, want [%d]", got, p1)
	}
	ev = g.WaitAudit(t, Action("server", "report", "done", udp.PID), Deadline)
	if got := fmt.Sprint(ev.Values["proc.listen_ports"]); got != fmt.Sprintf("[%d]", p2) {
		t.Errorf("proc.listen_ports of the UDP server = %s, want [%d]", got, p2)
	}
	ev = g.WaitAudit(t, Action("listeners", "report", "done", 0), Deadline)
	if ev.UID != u.UID || ev.Values["user.listeners"] != 2.0 {
		t.Errorf("user.listeners line: uid %d values %v", ev.UID, ev.Values)
	}
	for _, ev := range g.Audit(t) {
		if int(ev.PID) == quiet.PID {
			t.Errorf("a process without listeners matched: %+v", ev)
		}
	}
}

// TestListenPinnedAcrossRestart: with bpf_pin_dir the hook outlives
// guardd, so a restart leaves no window; without it, stopping detaches.
func TestListenPinnedAcrossRestart(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	mnt := t.TempDir() // a bpf filesystem of the test's own
	if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
		t.Skipf("cannot mount a bpf filesystem: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) }) // releases whatever is pinned there
	pin := filepath.Join(mnt, "guardd")
	dir := t.TempDir()
	body := Class(u) + listenBlock("bind")
	header := func() string {
		return strings.Replace(Header(dir, DefaultInterval), "}\n", fmt.Sprintf("  bpf_pin_dir = %q\n}\n", pin), 1)
	}
	writePolicy := func(text string) {
		if err := os.WriteFile(filepath.Join(dir, "policy.hcl"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePolicy(header() + body)
	g := StartGuarddConfig(t, Config{Dir: dir})
	waitHook(t, g)
	g.Stop(t)
	g.WaitLog(t, Msg("bind hook left attached"), Deadline)
	between := listen(t, u, "tcp", "0.0.0.0", 8080)
	between.WaitOutput(t, "bind-error EPERM", Deadline) // no guardd runs: still refused

	// The next guardd takes the pins over, and journals the refusal made
	// while none ran.
	g2 := StartGuarddConfig(t, Config{Dir: dir})
	waitHook(t, g2)
	g2.WaitAudit(t, refusal(between, "done", 8080), Deadline)
	// The admin drops bpf_pin_dir: the pins go at the reload, and the
	// hook detaches when guardd stops.
	writePolicy(Header(dir, DefaultInterval) + body)
	g2.WaitLog(t, Msg("policy reloaded"), Deadline)
	g2.Stop(t)
	if ents, _ := os.ReadDir(pin); len(ents) != 0 {
		t.Errorf("still pinned after guardd stopped without bpf_pin_dir: %v", ents)
	}
	after := listen(t, u, "tcp", "127.0.0.1", testPort(t))
	after.WaitOutput(t, "listening", Deadline) // no hook left: the bind goes through
}
