//go:build linux

package tests

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/guardd/guardd/enforce"
	"golang.org/x/sys/unix"
)

// Per-customer isolation, the connect hook and the traffic hook as
// installed: guardd run by the shipped unit under the host's systemd 252,
// booted in a container with a unified (cgroup v2 only) hierarchy, so that
// guardd picks the systemd driver and attaches its BPF hooks to the
// container's cgroup2 root.

// listenIn returns a TCP listener made in the container's network
// namespace (it has only its own loopback: nspawn --private-network) by
// this process, as root and outside the container's cgroups: the sink's
// own packets count for nobody. A socket stays in the namespace it was
// made in, so only the thread that makes it enters the container's.
func (c *container) listenIn(t *testing.T, addr string) net.Listener {
	t.Helper()
	type res struct {
		l   net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		ours, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer ours.Close()
		theirs, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", c.pid1))
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer theirs.Close()
		if err := unix.Setns(int(theirs.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: fmt.Errorf("setns into the container's network: %w", err)}
			return // a failed setns leaves the thread as it was; it ends locked
		}
		l, err := net.Listen("tcp", addr)
		// Back to our namespace; a thread that cannot go back ends with
		// this goroutine (it stays locked).
		if unix.Setns(int(ours.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- res{l, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listening on %s in the container: %v", addr, r.err)
	}
	t.Cleanup(func() { r.l.Close() })
	return r.l
}

// sinkIn is a trafficSink on a listener in the container.
func (c *container) sinkIn(t *testing.T, addr string) *trafficSink {
	t.Helper()
	l := c.listenIn(t, net.JoinHostPort(addr, "0"))
	s := &trafficSink{port: l.Addr().(*net.TCPAddr).Port, conns: make(chan net.Conn, 16)}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
			s.conns <- conn
		}
	}()
	return s
}

// startRootScope runs the offender as root in the container, in a scope
// unit of its own (inside the container's cgroups, where the hooks are
// attached), stopped when the test ends.
func (c *container) startRootScope(t *testing.T, args ...string) *sdOffender {
	t.Helper()
	unit := fmt.Sprintf("gdt-root-%06x", rand.IntN(1<<24))
	argv := append([]string{"-t", strconv.Itoa(c.pid1), "-a", "systemd-run", "--scope", "-q", "--unit=" + unit, "--", sdOffenderPath, "-nproc", "100"}, args...)
	o := &sdOffender{cmd: exec.Command("nsenter", argv...), lines: make(chan string, 1024)}
	pr, err := o.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	o.cmd.Stderr = o.cmd.Stdout
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readLines(pr, func(l string) {
		select {
		case o.lines <- l:
		default:
		}
	})
	t.Cleanup(func() {
		// Stopping the scope kills its processes: only this offender.
		c.exec("systemctl", "stop", unit+".scope")
		o.cmd.Process.Kill()
		o.cmd.Wait()
	})
	return o
}

// sdIsolationPolicy: the customer u in class c with cpu, memory and procs
// limits, a fork-storm rule that kills it, port 25 of "the world"
// (127.0.0.2) refused, and a report when it sends fast; the control user
// in class q has only the same traffic rule.
func sdIsolationPolicy(u, ctl *sdUser) string {
	return fmt.Sprintf(`guardd {
  interval = "200ms"
  mode     = "enforce"
}

class "c" {
  users = [%q]
}

class "q" {
  users = [%q]
}

limits "c" {
  class  = "c"
  cpu    = 50
  memory = "512MiB"
  procs  = 100
}

rule "fork-storm" {
  class    = "c"
  when     = user.procs > 20
  cooldown = "2s"
  kill_user {}
}

connect "c" {
  class = "c"
  deny  = ["127.0.0.2:25"]
  mode  = "enforce"
}

rule "sender" {
  class = "c"
  when  = user.tx_bytes_per_sec > 5000000
  report {}
}

rule "sender-q" {
  class = "q"
  when  = user.tx_bytes_per_sec > 5000000
  report {}
}
`, u.Name, ctl.Name)
}

// TestSystemdIsolation runs guardd from the shipped unit under a real
// systemd booted unified, with a limits block: the customer's processes
// land in guardd-u<UID>.scope/work in guardd.slice with the limits as the
// scope's properties, kill_user ends a fork storm through the group, the
// connect hook refuses the customer's connect to 127.0.0.2:25 (root's
// goes through), the traffic hook's counters fire a report rule, and
// `systemctl stop guardd` leaves the customer's scope and processes
// running. Controls: a user outside the class stays where it was started
// and sending little fires nothing.
func TestSystemdIsolation(t *testing.T) {
	t.Parallel()
	stage := t.TempDir()
	const target = "gdt-isolation-test.target"
	for _, d := range []string{filepath.Join(stage, "etc", "systemd", "system"), filepath.Join(stage, "etc", "guardd"), filepath.Join(stage, "usr", "local", "bin"), filepath.Join(stage, "usr", "sbin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(stage, "etc", "systemd", "system", target), "[Unit]\nDescription=guardd isolation test\nWants=basic.target\nAfter=basic.target\n")
	// The binary as the README builds it: static, no cgo.
	if err := goBuildEnv(filepath.Join(stage, "usr", "sbin", "guardd"), "../guardd", []string{"CGO_ENABLED=0"}, "-trimpath"); err != nil {
		t.Fatal(err)
	}
	CopyFile(t, unitFile, filepath.Join(stage, "etc", "systemd", "system", "guardd.service"), 0o644)
	CopyFile(t, offenderBin, filepath.Join(stage, strings.TrimPrefix(sdOffenderPath, "/")), 0o755)

	c := bootContainerEnv(t, stage, target, []string{"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1"})
	cgRoot := filepath.Join(c.root, "sys", "fs", "cgroup")
	var st unix.Statfs_t
	if err := unix.Statfs(cgRoot, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skipf("the container's /sys/fs/cgroup is not cgroup2 (%v): nspawn would not boot it unified here", err)
	}
	u, ctl := c.newUser(t), c.newUser(t)
	setSDPolicy(t, c, sdIsolationPolicy(u, ctl))
	c.must(t, "guardd", "check", "/etc/guardd/policy.hcl")
	const unit = "guardd.service"
	c.must(t, "systemctl", "start", unit)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("journal of guardd.service:\n%s", c.journalText(unit))
		}
	})
	scope := enforce.ScopeName(u.UID)
	wantCg := "/" + enforce.GuarddSlice + "/" + scope + "/work"

	t.Run("Started", func(t *testing.T) {
		c.waitJournal(t, unit, 0, "per-customer isolation", "driver=systemd")
		c.waitJournal(t, unit, 0, "connect hook attached", "denied connects fail with EPERM")
		c.waitJournal(t, unit, 0, "traffic hook attached")
		// In the sandbox: the unit's seccomp filter and no new privileges.
		pid := c.show(t, unit, "MainPID")["MainPID"]
		status, err := os.ReadFile(filepath.Join(c.root, "proc", pid, "status"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Seccomp:\t2", "NoNewPrivs:\t1"} {
			if !strings.Contains(string(status), want) {
				t.Errorf("guardd's status lacks %q:\n%s", want, status)
			}
		}
		if j := c.journalText(unit); strings.Contains(j, "process events unavailable") {
			t.Logf("as expected in a container: no process events (the proc connector serves the initial namespaces only)")
		}
		for _, bad := range []string{"isolation unavailable", "hook unavailable", "function not implemented", "operation not permitted"} {
			if j := c.journalText(unit); strings.Contains(j, bad) {
				t.Errorf("the journal says %q: the sandbox refuses something guardd needs", bad)
			}
		}
	})

	t.Run("Placed", func(t *testing.T) {
		// systemd-run --uid: a root process (systemd-run, in a run-*.scope
		// of its own) that changes its uid to the customer's and execs.
		// Placed by the tick's reconcile here: the proc connector's uid
		// events reach only the host's initial namespaces.
		o := c.startOffender(t, u, "-nproc", "100", "sleep", "placed")
		pid := readyPID(t, o)
		var cg string
		if !Eventually(Deadline, func() bool { cg = c.procCgroup(t, pid); return cg == wantCg }) {
			t.Fatalf("the customer's process %s is in %q, want %q", pid, cg, wantCg)
		}
		p := c.show(t, scope, "ActiveState", "Slice", "CPUQuotaPerSecUSec", "MemoryMax", "MemoryHigh", "TasksMax", "Delegate")
		want := map[string]string{"ActiveState": "active", "Slice": enforce.GuarddSlice, "CPUQuotaPerSecUSec": "500ms",
			"MemoryMax": "536870912", "MemoryHigh": strconv.Itoa(512 << 20 / 10 * 9), "TasksMax": "100", "Delegate": "yes"}
		for k, v := range want {
			if p[k] != v {
				t.Errorf("%s: %s=%q, want %q", scope, k, p[k], v)
			}
		}
		// The control: a user outside the class stays in the scope
		// systemd-run made for it.
		b := c.startOffender(t, ctl, "-nproc", "100", "sleep", "bystander")
		bpid := readyPID(t, b)
		// Placement happens at the uid change or the next tick (200 ms):
		// wait until guardd has placed another process of u started after
		// the bystander, then look.
		o2 := c.startOffender(t, u, "-nproc", "100", "sleep", "placed-2")
		pid2 := readyPID(t, o2)
		if !Eventually(Deadline, func() bool { return c.procCgroup(t, pid2) == wantCg }) {
			t.Fatalf("the customer's second process %s is in %q", pid2, c.procCgroup(t, pid2))
		}
		if bcg := c.procCgroup(t, bpid); strings.Contains(bcg, "guardd") || !strings.Contains(bcg, "run-") {
			t.Errorf("the bystander's process is in %q, want its own run-*.scope", bcg)
		}
		t.Logf("placed: %s in %s; bystander in %s", pid, cg, c.procCgroup(t, bpid))
	})

	t.Run("ConnectRefused", func(t *testing.T) {
		l := c.listenIn(t, "127.0.0.2:25")
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				conn.Close()
			}
		}()
		o := c.startOffender(t, u, "-nproc", "100", "dial", "tcp", "127.0.0.2", "25")
		if got := o.waitOutput(t, "dial "); got != "dial EPERM 1" {
			t.Errorf("the customer's connect to 127.0.0.2:25: %q, want dial EPERM 1", got)
		}
		ev := waitSDAudit(t, c, func(ev Event) bool {
			return ev.Action == "refuse-connect" && ev.UID == u.UID && ev.Port == 25 && ev.Outcome == "done"
		})
		t.Logf("refusal: %s", ev.Reason)
		// The same destination written as an IPv4-mapped IPv6 address
		// goes through the connect6 hook: refused too.
		m := c.startOffender(t, u, "-nproc", "100", "dial", "tcp", "::ffff:127.0.0.2", "25")
		if got := m.waitOutput(t, "dial "); got != "dial EPERM 1" {
			t.Errorf("the customer's connect to [::ffff:127.0.0.2]:25: %q, want dial EPERM 1", got)
		}
		// The controls: root's connect to the same listener, and the
		// customer's to another port of the same address.
		r := c.startRootScope(t, "dial", "tcp", "127.0.0.2", "25")
		if got := r.waitOutput(t, "dial "); got != "dial ok 1" {
			t.Errorf("root's connect to 127.0.0.2:25: %q, want dial ok 1", got)
		}
		other := c.sinkIn(t, "127.0.0.2")
		o2 := c.startOffender(t, u, "-nproc", "100", "dial", "tcp", "127.0.0.2", strconv.Itoa(other.port))
		if got := o2.waitOutput(t, "dial "); got != "dial ok 1" {
			t.Errorf("the customer's connect to 127.0.0.2:%d: %q, want dial ok 1", other.port, got)
		}
	})

	t.Run("TrafficReported", func(t *testing.T) {
		sink := c.sinkIn(t, "127.0.0.1")
		// The control first, to the end: 16 KiB once, under 5 MB/s over
		// any tick longer than 4 ms (they are 200 ms).
		q := c.startOffender(t, ctl, "-nproc", "100", "send", "127.0.0.1", strconv.Itoa(sink.port), strconv.Itoa(16<<10))
		q.waitOutput(t, "connected")
		qc := sink.accept(t)
		round(t, qc, 16<<10)
		o := c.startOffender(t, u, "-nproc", "100", "send", "127.0.0.1", strconv.Itoa(sink.port), strconv.Itoa(4<<20))
		o.waitOutput(t, "connected")
		conn := sink.accept(t)
		// A few MiB per round until the rule fires (one round is enough
		// where a tick sees it whole).
		path := filepath.Join(c.root, "var", "log", "guardd", "audit.jsonl")
		var fired *Event
		sent := 0
		if !Eventually(Deadline, func() bool {
			round(t, conn, 4<<20)
			sent += 4 << 20
			evs, _ := ReadAudit(path)
			for i := range evs {
				if evs[i].Rule == "sender" && evs[i].UID == u.UID {
					fired = &evs[i]
					return true
				}
			}
			return false
		}) {
			t.Fatalf("no sender line after the customer sent %d bytes", sent)
		}
		v, _ := fired.Values["user.tx_bytes_per_sec"].(float64)
		if v <= 5e6 {
			t.Errorf("sender line: user.tx_bytes_per_sec = %v, want > 5e6", fired.Values["user.tx_bytes_per_sec"])
		}
		t.Logf("sender line after %d bytes: user.tx_bytes_per_sec = %.0f", sent, v)
		evs, _ := ReadAudit(path)
		for _, ev := range evs {
			if ev.Rule == "sender-q" {
				t.Errorf("the control user's 16 KiB fired %+v", ev)
			}
		}
	})

	t.Run("ForkStormKilledThroughGroup", func(t *testing.T) {
		// The forker waits until it is in its group, then clones until
		// fork fails, under its safety net of 300 (guardd's procs cap
		// lowers it to 100). In this container guardd has no process
		// events (the proc connector serves only the host's namespaces),
		// so the tick places it, and a storm started at once would be
		// killed by the fast scan before its first tick: the start waits
		// for the placement instead.
		b := c.startOffender(t, ctl, "-nproc", "100", "sleep", "bystander")
		bpid := readyPID(t, b)
		trigger := fmt.Sprintf("/dev/shm/gdt-storm-%06x", rand.IntN(1<<24))
		f := c.startOffender(t, u, "-nproc", "300", "fork-until", trigger)
		fpid := readyPID(t, f)
		if !Eventually(Deadline, func() bool { return c.procCgroup(t, fpid) == wantCg }) {
			t.Fatalf("the forker %s is in %q, want %q", fpid, c.procCgroup(t, fpid), wantCg)
		}
		writeFile(t, filepath.Join(c.root, trigger), "go\n")
		t.Cleanup(func() { os.Remove(filepath.Join(c.root, trigger)) })
		ev := waitSDAudit(t, c, func(ev Event) bool {
			return ev.Rule == "fork-storm" && ev.Action == "kill_user" && ev.Outcome == "done" && ev.UID == u.UID
		})
		t.Logf("kill_user: %s", ev.Reason)
		var n int
		if i := strings.Index(ev.Reason, "killed u"+strconv.Itoa(int(u.UID))+"/work: "); i < 0 {
			t.Errorf("kill_user did not go through the group: %q", ev.Reason)
		} else if fmt.Sscanf(ev.Reason[i+len("killed u"+strconv.Itoa(int(u.UID))+"/work: "):], "%d processes", &n); n < 1 {
			t.Errorf("kill_user killed %d processes through the group: %q", n, ev.Reason)
		}
		if !Eventually(Deadline, func() bool { return len(PIDsOfUID(u.UID)) == 0 }) {
			t.Fatalf("processes of %s still alive after kill_user: %d", u.Name, len(PIDsOfUID(u.UID)))
		}
		// The control: the bystander, outside the class, lives.
		if !c.alive(bpid) {
			t.Errorf("the bystander's process %s is gone", bpid)
		}
	})

	t.Run("StopLeavesScope", func(t *testing.T) {
		o := c.startOffender(t, u, "-nproc", "100", "sleep", "survivor")
		pid := readyPID(t, o)
		if !Eventually(Deadline, func() bool { return c.procCgroup(t, pid) == wantCg }) {
			t.Fatalf("the survivor %s is in %q, want %q", pid, c.procCgroup(t, pid), wantCg)
		}
		c.must(t, "systemctl", "stop", unit)
		if p := c.show(t, unit, "ActiveState", "Result"); p["ActiveState"] != "inactive" || p["Result"] != "success" {
			t.Errorf("after systemctl stop: %v", p)
		}
		if !c.alive(pid) {
			t.Fatalf("the customer's process %s died with guardd.service", pid)
		}
		if cg := c.procCgroup(t, pid); cg != wantCg {
			t.Errorf("after the stop the survivor is in %q, want %q", cg, wantCg)
		}
		if p := c.show(t, scope, "ActiveState"); p["ActiveState"] != "active" {
			t.Errorf("%s after guardd stopped: %v", scope, p)
		}
		// startOffender's cleanup kills it, with guardd's helper.
	})
}
