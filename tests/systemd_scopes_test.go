//go:build linux

package tests

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/enforce"
	"golang.org/x/sys/unix"
)

// The systemd group driver under a real systemd: the host's systemd 252
// booted in a container with a unified (cgroup v2 only) hierarchy, the
// driver run inside it by tests/scopectl, customers' processes placed in
// guardd-u<UID>.scope and acted on.

// scopeCtl is a running scopectl in the container: one command per line.
type scopeCtl struct {
	in    io.WriteCloser
	lines chan string
}

func (s *scopeCtl) do(t testing.TB, format string, args ...any) (string, error) {
	t.Helper()
	cmd := fmt.Sprintf(format, args...)
	if _, err := fmt.Fprintln(s.in, cmd); err != nil {
		t.Fatalf("scopectl %q: %v", cmd, err)
	}
	select {
	case l, ok := <-s.lines:
		if !ok {
			t.Fatalf("scopectl %q: it exited", cmd)
		}
		if v, ok := strings.CutPrefix(l, "ok"); ok {
			return strings.TrimSpace(v), nil
		}
		return "", fmt.Errorf("scopectl %s: %s", cmd, strings.TrimPrefix(l, "err "))
	case <-time.After(Deadline):
		t.Fatalf("scopectl %q: no answer within %s", cmd, Deadline)
	}
	return "", nil
}

func (s *scopeCtl) must(t testing.TB, format string, args ...any) string {
	t.Helper()
	out, err := s.do(t, format, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startScopeCtl runs scopectl as root in every namespace of the container.
func (c *container) startScopeCtl(t *testing.T, minUID uint32) *scopeCtl {
	t.Helper()
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(c.pid1), "-a", scopeCtlPath, "-min-uid", strconv.Itoa(int(minUID)))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &scopeCtl{in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	// Its greeting says the driver is up (or why not).
	select {
	case l := <-s.lines:
		if l != "ok systemd" {
			t.Fatalf("scopectl: %q", l)
		}
	case <-time.After(Deadline):
		t.Fatalf("scopectl: no greeting within %s", Deadline)
	}
	return s
}

const scopeCtlPath = "/usr/local/bin/gdt-scopectl"

// procCgroup is the v2 line of a container process's /proc/PID/cgroup, as
// the container sees it (read in its cgroup namespace: from the host the
// path would start with the launcher's groups).
func (c *container) procCgroup(t testing.TB, pid string) string {
	t.Helper()
	b := c.must(t, "cat", "/proc/"+pid+"/cgroup")
	for line := range strings.Lines(b) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			return v
		}
	}
	t.Fatalf("no cgroup v2 line for pid %s: %s", pid, b)
	return ""
}

// cpuTicks is a container process's user+system time, in clock ticks.
func (c *container) cpuTicks(t testing.TB, pid string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.root, "proc", pid, "stat"))
	if err != nil {
		t.Fatalf("stat of pid %s: %v", pid, err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return u + s
}

// alive: the container pid names a process that has not exited.
func (c *container) alive(pid string) bool {
	b, err := os.ReadFile(filepath.Join(c.root, "proc", pid, "stat"))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func readyPID(t testing.TB, o *sdOffender) string {
	t.Helper()
	f := strings.Fields(o.waitOutput(t, "ready "))
	if len(f) < 2 {
		t.Fatalf("offender said %q", o.out)
	}
	return f[1]
}

const scopesTarget = "gdt-scopes-test.target"

// scopesStage stages what the containers of these tests need: a target
// of their own, scopectl, the offender and guardd (its helper kills a
// user's processes in startOffender's cleanup).
func scopesStage(t *testing.T) string {
	t.Helper()
	stage := t.TempDir()
	for _, d := range []string{filepath.Join(stage, "etc", "systemd", "system"), filepath.Join(stage, "usr", "local", "bin"), filepath.Join(stage, "usr", "sbin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(stage, "etc", "systemd", "system", scopesTarget), "[Unit]\nDescription=guardd scopes test\nWants=basic.target\nAfter=basic.target\n")
	if err := goBuildEnv(filepath.Join(stage, strings.TrimPrefix(scopeCtlPath, "/")), "./scopectl", []string{"CGO_ENABLED=0"}); err != nil {
		t.Fatal(err)
	}
	CopyFile(t, offenderBin, filepath.Join(stage, strings.TrimPrefix(sdOffenderPath, "/")), 0o755)
	// startOffender's cleanup kills the user's processes with guardd's
	// helper, from inside.
	CopyFile(t, guarddBin, filepath.Join(stage, "usr", "sbin", "guardd"), 0o755)
	return stage
}

// TestSystemdScopesRefusedHybrid: under systemd on a hybrid hierarchy (the
// container as this host boots it by default) the driver refuses to
// start, saying why, so that the caller falls back to the cgroup
// filesystem driver; no unit is made.
func TestSystemdScopesRefusedHybrid(t *testing.T) {
	t.Parallel()
	c := bootContainer(t, scopesStage(t), scopesTarget)
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Join(c.root, "sys", "fs", "cgroup"), &st); err != nil || st.Type == unix.CGROUP2_SUPER_MAGIC {
		t.Skipf("the container booted unified here (%v): no hybrid systemd to refuse", err)
	}
	out, err := c.exec(scopeCtlPath, "-min-uid", "3000000")
	if err == nil || !strings.Contains(out, "err systemd runs a cgroup v1 or hybrid hierarchy") || !strings.Contains(out, "use the cgroup filesystem driver") {
		t.Errorf("scopectl on a hybrid systemd: %v\n%s", err, out)
	}
	if u := c.must(t, "systemctl", "list-units", "--all", "--no-legend", "guardd*"); strings.TrimSpace(u) != "" {
		t.Errorf("units made anyway: %s", u)
	}
	// The control: the same systemd answers on its private socket.
	if v := c.must(t, "systemctl", "show", "-p", "Version"); !strings.HasPrefix(v, "Version=") {
		t.Errorf("systemctl show -p Version: %q", v)
	}
}

// TestSystemdScopes: the systemd driver starts a customer's scope with its
// first process and the limits as properties, puts processes in its work
// and kept leaves, freezes, thaws and kills the work leaf only, and starts
// the scope again after systemd collected it. Controls: a uid below
// min_uid, a stale start time, an exited process and another user's
// process are refused.
func TestSystemdScopes(t *testing.T) {
	t.Parallel()
	stage := scopesStage(t)
	// nspawn's documented switch: the container gets a cgroup2 mount of
	// its own subtree on this hybrid host.
	c := bootContainerEnv(t, stage, scopesTarget, []string{"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1"})
	cgRoot := filepath.Join(c.root, "sys", "fs", "cgroup")
	var st unix.Statfs_t
	if err := unix.Statfs(cgRoot, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skipf("the container's /sys/fs/cgroup is not cgroup2 (%v): nspawn would not boot it unified here", err)
	}
	ctrls, _ := os.ReadFile(filepath.Join(cgRoot, "cgroup.controllers"))
	t.Logf("controllers of the container's cgroup2 root: %q", strings.TrimSpace(string(ctrls)))

	u, other := c.newUser(t), c.newUser(t)
	const minUID = 3_000_000 // newUser's uids are 3,000,000 and up
	ctl := c.startScopeCtl(t, minUID)
	scope := enforce.ScopeName(u.UID)
	leafDir := func(kept bool) string {
		d, err := enforce.LeafDir(cgRoot, "/"+enforce.GuarddSlice+"/"+scope, u.UID, kept)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	events := func(kept bool) string {
		b, _ := os.ReadFile(filepath.Join(leafDir(kept), "cgroup.events"))
		return strings.Join(strings.Fields(string(b)), " ")
	}
	place := func(pid, leaf string) error {
		start := strings.Fields(ctl.must(t, "start %s", pid))[0]
		out, err := ctl.do(t, "place %d %s %s %s", u.UID, pid, start, leaf)
		if err == nil {
			t.Logf("place %s in %s: %s", pid, leaf, out)
		}
		return err
	}

	// 50 % of a core, memory.high 100 MiB, memory.max 200 MiB, 60 tasks,
	// 1 and 2 MiB/s on a block device.
	ctl.must(t, "ensure %d 50 104857600 209715200 60 1048576 2097152 /dev/loop0", u.UID)
	if p := c.show(t, scope, "LoadState"); p["LoadState"] != "not-found" {
		t.Errorf("before any process: %s %v, want no unit yet (a scope cannot start empty)", scope, p)
	}

	burner := c.startOffender(t, u, "-nproc", "100", "burn")
	burnPID := readyPID(t, burner)
	if err := place(burnPID, "work"); err != nil {
		t.Fatal(err)
	}
	limits := map[string]string{
		"ActiveState":         "active",
		"Slice":               enforce.GuarddSlice,
		"Delegate":            "yes",
		"CollectMode":         "inactive-or-failed",
		"CPUQuotaPerSecUSec":  "500ms",
		"MemoryHigh":          "104857600",
		"MemoryMax":           "209715200",
		"TasksMax":            "60",
		"IOReadBandwidthMax":  "/dev/loop0 1048576",
		"IOWriteBandwidthMax": "/dev/loop0 2097152",
	}
	checkProps := func(want map[string]string) {
		t.Helper()
		var keys []string
		for k := range want {
			keys = append(keys, k)
		}
		p := c.show(t, scope, append(keys, "Description")...)
		for k, v := range want {
			if p[k] != v {
				t.Errorf("%s: %s=%q, want %q", scope, k, p[k], v)
			}
		}
		if !strings.Contains(p["Description"], strconv.Itoa(int(u.UID))) || !strings.Contains(p["Description"], "guardd") {
			t.Errorf("%s: Description=%q, want the uid and guardd", scope, p["Description"])
		}
	}
	checkProps(limits)
	wantCg := "/" + enforce.GuarddSlice + "/" + scope
	if cg := c.procCgroup(t, burnPID); cg != wantCg+"/work" {
		t.Errorf("burner's cgroup %q, want %q", cg, wantCg+"/work")
	}
	// What holds here: the limits are systemd's properties; the kernel
	// enforces them only where the container's root has the controllers
	// (this hybrid host's v2 tree has none).
	sc, _ := os.ReadFile(filepath.Join(cgRoot, enforce.GuarddSlice, scope, "cgroup.controllers"))
	t.Logf("controllers of %s: %q (limits enforced by the kernel only for these)", scope, strings.TrimSpace(string(sc)))

	keeper := c.startOffender(t, u, "-nproc", "100", "sleep", "kept")
	keepPID := readyPID(t, keeper)
	if err := place(keepPID, "kept"); err != nil {
		t.Fatal(err)
	}
	if cg := c.procCgroup(t, keepPID); cg != wantCg+"/kept" {
		t.Errorf("kept process's cgroup %q, want %q", cg, wantCg+"/kept")
	}
	if m := ctl.must(t, "members %d", u.UID); m != fmt.Sprintf("work=%s kept=%s", burnPID, keepPID) {
		t.Errorf("members: %q", m)
	}

	t.Run("MoveLatency", func(t *testing.T) {
		// A placement into the running scope, measured in the driver:
		// the kept process moved between the leaves 200 times.
		start := strings.Fields(ctl.must(t, "start %s", keepPID))[0]
		var took []time.Duration
		for i := range 200 {
			leaf := []string{"work", "kept"}[i%2]
			out := ctl.must(t, "place %d %s %s %s", u.UID, keepPID, start, leaf)
			us, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(out, "took="), "us"))
			if err != nil {
				t.Fatalf("place said %q", out)
			}
			took = append(took, time.Duration(us)*time.Microsecond)
		}
		slices.Sort(took)
		t.Logf("Place into a running scope (AttachProcessesToUnit and the start time checks), 200 moves: median %s, worst %s", took[len(took)/2], took[len(took)-1])
		if cg := c.procCgroup(t, keepPID); cg != wantCg+"/kept" {
			t.Errorf("after the moves: %q, want %q", cg, wantCg+"/kept")
		}
	})

	t.Run("FreezeThaw", func(t *testing.T) {
		ctl.must(t, "freeze %d", u.UID)
		if e := events(false); !strings.Contains(e, "frozen 1") {
			t.Fatalf("work leaf after freeze: %s", e)
		}
		if e := events(true); !strings.Contains(e, "frozen 0") {
			t.Errorf("kept leaf after freeze of work: %s", e)
		}
		// A frozen burner gets no CPU time: measured over 500 ms (a
		// running one gets ~50 ticks).
		before := c.cpuTicks(t, burnPID)
		time.Sleep(500 * time.Millisecond)
		if after := c.cpuTicks(t, burnPID); after != before {
			t.Errorf("frozen burner ran: %d → %d ticks", before, after)
		}
		ctl.must(t, "thaw %d", u.UID)
		if e := events(false); !strings.Contains(e, "frozen 0") {
			t.Fatalf("work leaf after thaw: %s", e)
		}
		before = c.cpuTicks(t, burnPID)
		if !Eventually(Deadline, func() bool { return c.cpuTicks(t, burnPID) > before+5 }) {
			t.Errorf("thawed burner does not run: %d ticks", c.cpuTicks(t, burnPID))
		}
	})

	t.Run("KillSparesKept", func(t *testing.T) {
		// Frozen first, as stop_user then kill_user would: cgroup.kill's
		// SIGKILL ends frozen processes too.
		ctl.must(t, "freeze %d", u.UID)
		ctl.must(t, "kill %d", u.UID)
		if !Eventually(Deadline, func() bool { return !c.alive(burnPID) }) {
			t.Fatalf("burner %s alive after kill", burnPID)
		}
		if !c.alive(keepPID) {
			t.Errorf("kept process %s died with the work leaf", keepPID)
		}
		if m := ctl.must(t, "members %d", u.UID); m != "work= kept="+keepPID {
			t.Errorf("members after kill: %q", m)
		}
		if p := c.show(t, scope, "ActiveState"); p["ActiveState"] != "active" {
			t.Errorf("scope with its kept process: %v", p)
		}
		ctl.must(t, "thaw %d", u.UID)
		// Remove refuses a scope that still has a process.
		if _, err := ctl.do(t, "remove %d", u.UID); err == nil || !strings.Contains(err.Error(), "still has 1 processes") {
			t.Errorf("remove with a kept process: %v", err)
		}
	})

	t.Run("CollectedAndStartedAgain", func(t *testing.T) {
		c.must(t, "kill", "-KILL", keepPID)
		if !Eventually(Deadline, func() bool {
			return c.show(t, scope, "LoadState")["LoadState"] == "not-found"
		}) {
			t.Fatalf("%s not collected after its last process exited: %v", scope, c.show(t, scope, "LoadState", "ActiveState", "SubState"))
		}
		again := c.startOffender(t, u, "-nproc", "100", "sleep", "again")
		pid := readyPID(t, again)
		if err := place(pid, "work"); err != nil {
			t.Fatal(err)
		}
		checkProps(limits) // the remembered limits
		if cg := c.procCgroup(t, pid); cg != wantCg+"/work" {
			t.Errorf("cgroup %q, want %q", cg, wantCg+"/work")
		}
		// A reload lowers the limits in place: the process stays.
		ctl.must(t, "ensure %d 25 0 104857600 30 0 0", u.UID)
		checkProps(map[string]string{"ActiveState": "active", "CPUQuotaPerSecUSec": "250ms", "MemoryHigh": "infinity",
			"MemoryMax": "104857600", "TasksMax": "30", "IOReadBandwidthMax": "", "IOWriteBandwidthMax": ""})
		if cg := c.procCgroup(t, pid); cg != wantCg+"/work" {
			t.Errorf("after the change in place: cgroup %q", cg)
		}

		// Controls, each beside a placement that works.
		start := strings.Fields(ctl.must(t, "start %s", pid))[0]
		st, _ := strconv.ParseUint(start, 10, 64)
		if _, err := ctl.do(t, "place %d %s %d work", u.UID, pid, st+1); err == nil || !strings.Contains(err.Error(), "pid names another process") {
			t.Errorf("a stale start time: %v", err)
		}
		if _, err := ctl.do(t, "place %d %s %s work", minUID-1, pid, start); err == nil || !strings.Contains(err.Error(), "below min_uid") {
			t.Errorf("uid below min_uid: %v", err)
		}
		if _, err := ctl.do(t, "ensure %d 50 0 0 0 0 0", minUID-1); err == nil || !strings.Contains(err.Error(), "below min_uid") {
			t.Errorf("ensure below min_uid: %v", err)
		}
		o := c.startOffender(t, other, "-nproc", "100", "sleep", "other")
		opid := readyPID(t, o)
		ostart := strings.Fields(ctl.must(t, "start %s", opid))[0]
		if _, err := ctl.do(t, "place %d %s %s work", u.UID, opid, ostart); err == nil || !strings.Contains(err.Error(), "runs as uid") {
			t.Errorf("another user's process: %v", err)
		}
		if cg := c.procCgroup(t, opid); strings.Contains(cg, "guardd") {
			t.Errorf("the other user's process was moved: %s", cg)
		}
		gone := c.startOffender(t, u, "-nproc", "100", "sleep", "gone")
		gpid := readyPID(t, gone)
		gstart := strings.Fields(ctl.must(t, "start %s", gpid))[0]
		c.must(t, "kill", "-KILL", gpid)
		if !Eventually(Deadline, func() bool { return !c.alive(gpid) }) {
			t.Fatalf("pid %s alive after SIGKILL", gpid)
		}
		if _, err := ctl.do(t, "place %d %s %s work", u.UID, gpid, gstart); err == nil || !strings.Contains(err.Error(), "exited") {
			t.Errorf("an exited process: %v", err)
		}
		// The control's control: the live process still places.
		if err := place(pid, "kept"); err != nil {
			t.Errorf("moving the live process to kept: %v", err)
		}
		if cg := c.procCgroup(t, pid); cg != wantCg+"/kept" {
			t.Errorf("cgroup %q, want %q", cg, wantCg+"/kept")
		}

		// Remove, once the scope is empty, forgets the limits: the next
		// scope of the customer starts without them.
		c.must(t, "kill", "-KILL", pid)
		// Until its parent reaps it, the kernel may still list the
		// exited process in the leaf.
		if !Eventually(Deadline, func() bool { return ctl.must(t, "members %d", u.UID) == "work= kept=" }) {
			t.Fatalf("members after SIGKILL of %s: %s", pid, ctl.must(t, "members %d", u.UID))
		}
		ctl.must(t, "remove %d", u.UID)
		if !Eventually(Deadline, func() bool {
			return c.show(t, scope, "LoadState")["LoadState"] == "not-found"
		}) {
			t.Fatalf("%s left after remove: %v", scope, c.show(t, scope, "LoadState", "ActiveState"))
		}
		fresh := c.startOffender(t, u, "-nproc", "100", "sleep", "fresh")
		if err := place(readyPID(t, fresh), "work"); err != nil {
			t.Fatal(err)
		}
		checkProps(map[string]string{"ActiveState": "active", "CPUQuotaPerSecUSec": "infinity", "MemoryMax": "infinity", "TasksMax": "infinity"})

		t.Run("InTheUnitSandbox", func(t *testing.T) {
			// The driver as guardd runs it: in the shipped unit's
			// sandbox (its settings, only the command and type changed).
			fpid := readyPID(t, fresh)
			fstart := strings.Fields(ctl.must(t, "start %s", fpid))[0]
			unit := sandboxedScopeCtl(t, c, minUID, fmt.Sprintf("ensure %d 50 0 0 60 0 0\nplace %d %s %s kept\nmembers %d\nfreeze %d\nthaw %d\n",
				u.UID, u.UID, fpid, fstart, u.UID, u.UID, u.UID))
			if _, err := c.exec("systemctl", "start", unit); err != nil {
				t.Fatalf("%v\n%s", err, c.journalText(unit))
			}
			// journald stores the lines after the unit exited: wait
			// for all six answers (or an error).
			var said []string
			Eventually(Deadline, func() bool {
				said = nil
				for _, e := range c.journal(t, unit) {
					if strings.HasPrefix(e.Message, "ok") || strings.HasPrefix(e.Message, "err") {
						said = append(said, e.Message)
					}
				}
				return len(said) >= 6 || slices.ContainsFunc(said, func(l string) bool { return strings.HasPrefix(l, "err") })
			})
			if len(said) != 6 || said[0] != "ok systemd" || said[1] != "ok" || !strings.HasPrefix(said[2], "ok took=") ||
				said[3] != "ok work= kept="+fpid || said[4] != "ok" || said[5] != "ok" {
				t.Errorf("scopectl in the unit's sandbox said %q\n%s", said, c.journalText(unit))
			}
			if p := c.show(t, unit, "ProtectSystem", "NoNewPrivileges", "SystemCallFilter"); p["ProtectSystem"] != "strict" || p["NoNewPrivileges"] != "yes" || p["SystemCallFilter"] == "" {
				t.Errorf("the unit is not sandboxed like guardd's: %v", p)
			}
			checkProps(map[string]string{"ActiveState": "active", "CPUQuotaPerSecUSec": "500ms", "TasksMax": "60"})
			if cg := c.procCgroup(t, fpid); cg != wantCg+"/kept" {
				t.Errorf("placed from the sandbox: cgroup %q, want %q", cg, wantCg+"/kept")
			}
		})
	})
}

// sandboxedScopeCtl installs a oneshot unit that runs scopectl in the
// shipped guardd unit's sandbox, with script as its stdin, and returns
// its name.
func sandboxedScopeCtl(t *testing.T, c *container, minUID uint32, script string) string {
	t.Helper()
	const unit = "gdt-scopectl.service"
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	replaced := false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\n")
		k, _, _ := strings.Cut(line, "=")
		switch k {
		case "ExecStartPre", "ExecReload", "WatchdogSec", "Restart", "RestartSec", "WantedBy":
			continue // a oneshot: no check, reload, watchdog or restart
		case "Type":
			line = "Type=oneshot"
		case "ExecStart":
			line = fmt.Sprintf("ExecStart=%s -strict -min-uid %d\nStandardInput=file:/run/gdt-scopectl.in", scopeCtlPath, minUID)
			replaced = true
		}
		out = append(out, line)
	}
	if !replaced {
		t.Fatalf("no ExecStart= in %s", unitFile)
	}
	writeFile(t, filepath.Join(c.root, "run", "gdt-scopectl.in"), script)
	writeFile(t, filepath.Join(c.root, "etc", "systemd", "system", unit), strings.Join(out, "\n")+"\n")
	c.must(t, "systemctl", "daemon-reload")
	return unit
}
