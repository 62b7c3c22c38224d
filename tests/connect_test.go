//go:build linux

package tests

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Outbound: a customer's connect() to a denied destination (SMTP to "the
// world") is refused with EPERM by the kernel, while the local MTA, other
// ports and root are untouched. Loopback only: 127.0.0.1 plays the MTA,
// 127.0.0.2 the world. Each test's guardd holds only its own users, so
// the BPF programs of parallel tests never touch each other.

// smtpServers starts an SMTP-ish listener (a 220 banner) on 127.0.0.1:P
// and 127.0.0.2:P, P being 25 when both are free, and returns P.
func smtpServers(t *testing.T, try25 bool) int {
	t.Helper()
	ports := []int{}
	if try25 {
		ports = append(ports, 25)
	}
	for range 20 {
		ports = append(ports, testPort(t))
	}
	for _, p := range ports {
		var ls []net.Listener
		for _, a := range []string{"127.0.0.1", "127.0.0.2"} {
			l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(p)))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		if len(ls) < 2 {
			for _, l := range ls {
				l.Close()
			}
			continue
		}
		for _, l := range ls {
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					fmt.Fprintf(c, "220 %s ESMTP test\r\n", l.Addr())
					c.Close()
				}
			}()
		}
		return p
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return 0
}

func connectBlock(mode string, port int) string {
	return fmt.Sprintf("connect \"c\" {\n  class = \"c\"\n  deny  = [\"*:%d\"]\n  allow = [\"127.0.0.1:*\", \"[::1]:*\"]\n  mode  = %q\n}\n\n", port, mode)
}

// waitConnectHook waits until guardd says whether its connect hook is
// attached, and skips the test when it is not.
func waitConnectHook(t testing.TB, g *Guardd) {
	t.Helper()
	l := g.WaitLog(t, func(l LogLine) bool {
		return strings.HasPrefix(l.Msg, "connect hook attached") || strings.HasPrefix(l.Msg, "connect hook unavailable")
	}, Deadline)
	if strings.HasPrefix(l.Msg, "connect hook unavailable") {
		t.Skipf("no connect hook here: %v", l.Attrs["why"])
	}
}

func dial(t *testing.T, u *User, proto, addr string, port int, n int) *Offender {
	t.Helper()
	return StartOffender(t, u, "dial", proto, addr, strconv.Itoa(port), strconv.Itoa(n))
}

// connectRefusals sums the counts of the refuse-connect lines of pid to
// addr:port/proto with the outcome, and counts the lines.
func connectRefusals(t *testing.T, g *Guardd, pid int, addr string, port int, proto, outcome string) (sum, lines int) {
	for _, ev := range g.Audit(t) {
		if ev.Action == "refuse-connect" && int(ev.PID) == pid && ev.Addr == addr && int(ev.Port) == port &&
			ev.Proto == proto && ev.Outcome == outcome {
			sum += ev.Count
			lines++
		}
	}
	return sum, lines
}

func TestConnectSMTPRefused(t *testing.T) {
	t.Parallel()
	u, bystander := NewUser(t), NewUser(t)
	port := smtpServers(t, true)
	t.Logf("SMTP listeners on 127.0.0.1:%d and 127.0.0.2:%d", port, port)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") }))
	defer web.Close()
	webPort := web.Listener.Addr().(*net.TCPAddr).Port
	g := StartGuardd(t, Class(u)+connectBlock("enforce", port))
	waitConnectHook(t, g)

	for _, tc := range []struct {
		proto, addr, want, auditAddr string
	}{
		{"tcp", "127.0.0.2", "dial EPERM 1", "127.0.0.2"},
		{"tcp", "::ffff:127.0.0.2", "dial EPERM 1", "127.0.0.2"}, // IPv4-mapped: IPv4
		{"udp", "127.0.0.2", "dial EPERM 1", "127.0.0.2"},        // sendto() without connect
		{"tcp", "127.0.0.1", "dial ok 1", ""},                    // the local MTA
		{"tcp", "::ffff:127.0.0.1", "dial ok 1", ""},
	} {
		o := dial(t, u, tc.proto, tc.addr, port, 1)
		o.WaitOutput(t, tc.want, Deadline)
		if tc.auditAddr == "" {
			continue
		}
		ev := g.WaitAudit(t, func(ev Event) bool {
			return ev.Action == "refuse-connect" && int(ev.PID) == o.PID
		}, Deadline)
		if ev.UID != u.UID || ev.User != u.Name || ev.Addr != tc.auditAddr || int(ev.Port) != port || ev.Proto != tc.proto ||
			ev.Outcome != "done" || ev.Mode != "enforce" || ev.Rule != "c" || ev.RuleAt == "" || ev.Count != 1 || ev.Exe != offenderBin {
			t.Errorf("refusal of %s %s:%d: %+v", tc.proto, tc.addr, port, ev)
		}
	}
	// Controls: the customer's web client, a bystander and root reach what
	// the customer may not.
	h := StartOffender(t, u, "http", "127.0.0.1", strconv.Itoa(webPort))
	h.WaitOutput(t, "http-status 200", Deadline)
	other := dial(t, bystander, "tcp", "127.0.0.2", port, 1)
	other.WaitOutput(t, "dial ok 1", Deadline)
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)), 10*time.Second)
	if err != nil {
		t.Fatalf("root's connect to 127.0.0.2:%d: %v", port, err)
	}
	banner, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || !strings.HasPrefix(banner, "220 ") {
		t.Errorf("root's SMTP banner: %q, %v", banner, err)
	}

	// A spam script trying thousands of times: every try refused, and a
	// line per tick with a count, not a line per try. 127.0.0.3 has no
	// listener: a try that got through would say ECONNREFUSED.
	const tries = 3000
	spam := dial(t, u, "tcp", "127.0.0.3", port, tries)
	spam.WaitOutput(t, "dial EPERM "+strconv.Itoa(tries), Deadline)
	var sum, lines int
	if !Eventually(Deadline, func() bool {
		sum, lines = connectRefusals(t, g, spam.PID, "127.0.0.3", port, "tcp", "done")
		return sum >= tries
	}) || sum != tries {
		t.Errorf("spam: %d refusals in the audit log, want %d", sum, tries)
	}
	if lines < 1 || lines > 10 {
		t.Errorf("spam: %d audit lines for %d refusals", lines, tries)
	}
	for _, ev := range g.Audit(t) {
		if ev.Action == "refuse-connect" && (ev.UID != u.UID || ev.Port != uint16(port)) {
			t.Errorf("a refusal of someone else, or another port: %+v", ev)
		}
	}

	// A reload to monitor mode lets it through (and says so); one without
	// the block detaches the hook.
	g.SetPolicy(t, Class(u)+connectBlock("monitor", port))
	g.Reload(t)
	g.WaitLog(t, Msg("policy reloaded"), Deadline)
	mon := dial(t, u, "tcp", "127.0.0.2", port, 1)
	mon.WaitOutput(t, "dial ok 1", Deadline)
	g.WaitAudit(t, func(ev Event) bool {
		return ev.Action == "refuse-connect" && int(ev.PID) == mon.PID && ev.Outcome == "would-do" && ev.Count == 1
	}, Deadline)
	g.SetPolicy(t, Class(u)+"rule \"idle\" {\n  class = \"c\"\n  when  = proc.cpu_percent > 1000\n  report {}\n}\n")
	g.Reload(t)
	g.WaitLog(t, Msg("connect hook detached"), Deadline)
	after := dial(t, u, "tcp", "127.0.0.2", port, 1)
	after.WaitOutput(t, "dial ok 1", Deadline)
}

func TestConnectMonitor(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	port := smtpServers(t, false)
	g := StartGuardd(t, Class(u)+connectBlock("monitor", port))
	waitConnectHook(t, g)
	o := dial(t, u, "tcp", "127.0.0.2", port, 3)
	o.WaitOutput(t, "dial ok 3", Deadline)
	var sum int
	if !Eventually(Deadline, func() bool {
		sum, _ = connectRefusals(t, g, o.PID, "127.0.0.2", port, "tcp", "would-do")
		return sum >= 3
	}) || sum != 3 {
		t.Errorf("monitor: %d would-do refusals, want 3", sum)
	}
	for _, ev := range g.Audit(t) {
		if ev.Action == "refuse-connect" && (ev.Outcome != "would-do" || ev.Mode != "monitor" || !strings.HasPrefix(ev.Reason, "would refuse")) {
			t.Errorf("monitor mode line: %+v", ev)
		}
	}
	// Control: the MTA is not even counted. A denied connect after it
	// shows a tick has journalled what came before.
	mta := dial(t, u, "tcp", "127.0.0.1", port, 1)
	mta.WaitOutput(t, "dial ok 1", Deadline)
	after := dial(t, u, "tcp", "127.0.0.2", port, 1)
	after.WaitOutput(t, "dial ok 1", Deadline)
	g.WaitAudit(t, func(ev Event) bool { return ev.Action == "refuse-connect" && int(ev.PID) == after.PID }, Deadline)
	for _, ev := range g.Audit(t) {
		if ev.Action == "refuse-connect" && ev.Addr == "127.0.0.1" {
			t.Errorf("a connect to the MTA counted: %+v", ev)
		}
	}
}

// TestConnectCheck: `guardd check` points at the bad pattern of a connect
// block with its line and a hint; the same block with a good pattern
// passes (the control).
func TestConnectCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(pattern string) string {
		p := filepath.Join(dir, "policy.hcl")
		text := "class \"c\" { uids = [\"1000-59999\"] }\n\nconnect \"c\" {\n  class = \"c\"\n  deny  = [\"*:25\", " + strconv.Quote(pattern) + "]\n}\n"
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := write("mx.example.com:25")
	stdout, stderr, code := runCheck(t, nil, p)
	out := stdout + stderr
	if code == 0 || !strings.Contains(out, "policy.hcl:5") || !strings.Contains(out, "Bad connect pattern") ||
		!strings.Contains(out, "IPv4 address or CIDR") {
		t.Errorf("check of a bad connect pattern: exit %d\n%s", code, out)
	}
	p = write("10.0.0.0/8:25")
	if stdout, stderr, code := runCheck(t, nil, p); code != 0 {
		t.Errorf("check of a good connect block: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestConnectIPv6Refused: an IPv6 destination (loopback has one: ::1
// plays the world here) is refused by the connect6 and sendmsg6 programs;
// root's connect is the control.
func TestConnectIPv6Refused(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	port := testPort(t)
	l, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
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
	g := StartGuardd(t, Class(u)+fmt.Sprintf("connect \"c\" {\n  class = \"c\"\n  deny  = [\"[::1]:%d\"]\n  mode  = \"enforce\"\n}\n\n", port))
	waitConnectHook(t, g)
	for _, proto := range []string{"tcp", "udp"} {
		o := dial(t, u, proto, "::1", port, 1)
		o.WaitOutput(t, "dial EPERM 1", Deadline)
		ev := g.WaitAudit(t, func(ev Event) bool { return ev.Action == "refuse-connect" && int(ev.PID) == o.PID }, Deadline)
		if ev.Addr != "::1" || int(ev.Port) != port || ev.Proto != proto || ev.Outcome != "done" {
			t.Errorf("IPv6 %s refusal: %+v", proto, ev)
		}
	}
	// Not denied: IPv4 loopback on the same port (nothing listens there
	// unless another test took the port meanwhile: ECONNREFUSED or ok,
	// never EPERM).
	v4 := dial(t, u, "tcp", "127.0.0.1", port, 1)
	if !Eventually(Deadline, func() bool {
		out := v4.Output()
		return slices.Contains(out, "dial ECONNREFUSED 1") || slices.Contains(out, "dial ok 1")
	}) {
		t.Errorf("IPv4 connect on the IPv6 block's port: %q", v4.Output())
	}
	c, err := net.DialTimeout("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)), 10*time.Second)
	if err != nil {
		t.Fatalf("root's connect to [::1]:%d: %v", port, err)
	}
	c.Close()
}
