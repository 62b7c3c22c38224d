//go:build linux

package tests

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/internal/vmtest"
	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// The test VM (internal/vmtest): Debian's 6.1 kernel under qemu's TCG
// with pure cgroup v2 and its controllers, the host's / read-only under a
// tmpfs overlay, no network but loopback.
type (
	VMOptions = vmtest.Options
	VMResult  = vmtest.Result
)

// runInVM boots the test VM and runs o.Args there (see vmtest.Run).
func runInVM(t *testing.T, o VMOptions) VMResult {
	t.Helper()
	return vmtest.Run(t, o)
}

// inVM says whether this test binary runs inside the test VM; a test that
// rerunInVM re-runs checks it and does its VM part.
func inVM() bool { return vmtest.InVM() }

// rerunInVM re-runs this test binary inside the VM with -test.run pattern.
// TestMain there takes the guardd and offender binaries it built here
// (GUARDD_VM_BINDIR, see vmPrebuilt): building them under emulation takes
// a minute and a half. It fails the test unless the run there passed.
func rerunInVM(t *testing.T, pattern string, o VMOptions) VMResult {
	t.Helper()
	vmtest.Require(t)
	if o.Share == "" {
		o.Share = vmtest.ShareDir(t)
	}
	bin := filepath.Join(o.Share, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	CopyFile(t, guarddBin, filepath.Join(bin, "guardd"), 0o755)
	CopyFile(t, offenderBin, filepath.Join(bin, "offender"), 0o755)
	o.Env = append(o.Env, "GUARDD_VM_BINDIR="+bin)
	// This binary, by a path the VM sees (its /tmp is its own), from this
	// package's directory, as vmtest.RunSelf does for other packages.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	self := filepath.Join(o.Share, "tests.test")
	CopyFile(t, exe, self, 0o755)
	if o.Dir == "" {
		if o.Dir, err = os.Getwd(); err != nil {
			t.Fatal(err)
		}
	}
	o.Args = append([]string{self, "-test.run", pattern, "-test.v", "-test.count=1"}, o.Args...)
	r := runInVM(t, o)
	if r.ExitCode != 0 || !strings.Contains(r.Output, "\nPASS\n") {
		t.Fatalf("in the VM: %s (the VM's output is above)", r.Status)
	}
	return r
}

// vmPrebuilt is TestMain's step inside the VM: it copies the binaries the
// host built (GUARDD_VM_BINDIR) to guarddBin and offenderBin and reports
// true; outside the VM it does nothing and reports false.
func vmPrebuilt() (bool, error) {
	dir := os.Getenv("GUARDD_VM_BINDIR")
	if dir == "" || !inVM() {
		return false, nil
	}
	for _, f := range [][2]string{{"guardd", guarddBin}, {"offender", offenderBin}} {
		b, err := os.ReadFile(filepath.Join(dir, f[0]))
		if err != nil {
			return true, err
		}
		if err := os.WriteFile(f[1], b, 0o755); err != nil {
			return true, err
		}
	}
	return true, nil
}

// v2Controllers are the controllers per-customer isolation needs.
var v2Controllers = []string{"cpu", "memory", "io", "pids"}

// checkCgroupV2 says why dir is not a cgroup v2 root that offers and
// enables v2Controllers for its children (nil if it is).
func checkCgroupV2(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("%s is not cgroup2 (fs type %#x)", dir, st.Type)
	}
	for _, f := range []string{"cgroup.controllers", "cgroup.subtree_control"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		have := strings.Fields(string(b))
		for _, c := range v2Controllers {
			if !slices.Contains(have, c) {
				return fmt.Errorf("%s/%s has no %s: %q", dir, f, c, strings.TrimSpace(string(b)))
			}
		}
	}
	return nil
}

// TestVMCgroupV2 proves the VM harness: in the VM, cgroup v2 offers cpu,
// memory, io and pids, and they work: memory.max OOM-kills inside the
// group only, pids.max refuses a fork, cpu.max throttles, io.max slows
// direct writes to a scratch disk, and the proc connector sees a fork.
// Each with a control that the limit, not something else, did it; and on
// this host's v1 hybrid layout the same check finds no such controllers,
// so the test really ran in the VM. Both with the bare init (groups under
// the root) and with systemd as PID 1 (groups under the payload service's
// delegated group).
func TestVMCgroupV2(t *testing.T) {
	if inVM() {
		vmCgroupV2(t)
		return
	}
	// The control: the host (v1 hybrid here) fails the same check.
	hostRoots := []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}
	hostV2 := false
	for _, dir := range hostRoots {
		if err := checkCgroupV2(dir); err != nil {
			t.Logf("host: %v", err)
		} else {
			hostV2 = true
			t.Logf("host: %s is cgroup v2 with %v: the host control does not apply here", dir, v2Controllers)
		}
	}
	if b, _ := os.ReadFile("/proc/cmdline"); strings.Contains(string(b), "guardd.vm=1") {
		t.Fatal("the host's kernel command line carries the VM's marker")
	}
	for _, mode := range []struct {
		name    string
		systemd bool
	}{{"bare", false}, {"systemd", true}} {
		t.Run(mode.name, func(t *testing.T) {
			start := time.Now()
			r := rerunInVM(t, "^TestVMCgroupV2$", VMOptions{Systemd: mode.systemd, DiskMiB: 64, Timeout: 3 * time.Minute})
			for _, want := range []string{"--- PASS: TestVMCgroupV2", "vm: oom_kill 1", "vm: fork refused",
				"vm: throttled", "vm: io throttled", "vm: fork event"} {
				if !strings.Contains(r.Output, want) {
					t.Errorf("the VM's output has no %q", want)
				}
			}
			t.Logf("VM (%s): booted in %v, TCG slowdown %.1fx, %v in all (%v with the host's part); host v2: %v", mode.name,
				r.Boot.Round(time.Millisecond), r.Slowdown, r.Wall.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), hostV2)
		})
	}
}

// vmGroupBase is where the VM part makes its groups: the cgroup v2 root
// under the bare init (vminit enabled the controllers there); under
// systemd, the payload service's delegated group, after its processes
// moved into a leaf of it ("payload"): a group with processes of its own
// cannot enable controllers for its children.
func vmGroupBase(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	own, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "0::")
	if !ok {
		t.Fatalf("/proc/self/cgroup: %q", b)
	}
	dir := filepath.Join("/sys/fs/cgroup", own)
	if own == "/" {
		return dir
	}
	leaf := filepath.Join(dir, "payload")
	if err := os.Mkdir(leaf, 0o755); err != nil {
		t.Fatal(err)
	}
	// This process and its parent (vminit, which started it) move; the
	// subtree is the service's, delegated to it.
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range strings.Fields(string(procs)) {
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(pid), 0); err != nil {
			t.Fatalf("move %s to %s: %v", pid, leaf, err)
		}
	}
	for _, c := range v2Controllers {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
			t.Fatalf("enable %s in %s: %v", c, dir, err)
		}
	}
	return dir
}

// vmCgroupV2 is TestVMCgroupV2's part inside the VM.
func vmCgroupV2(t *testing.T) {
	const root = "/sys/fs/cgroup"
	if err := checkCgroupV2(root); err != nil {
		t.Fatal(err)
	}
	base := vmGroupBase(t)
	if err := checkCgroupV2(base); err != nil {
		t.Fatal(err)
	}
	pid1, _ := os.ReadFile("/proc/1/comm")
	t.Logf("vm: PID 1 %s; %s is cgroup v2 with %v enabled for its children; groups under %s",
		strings.TrimSpace(string(pid1)), root, v2Controllers, base)
	newV2Group := func(t *testing.T, name string) *v2Group { return newV2GroupIn(t, base, name) }
	// Pressure (PSI) per group, for the user.*_pressure variables.
	psi := newV2Group(t, "psi")
	for _, f := range []string{"cpu.pressure", "memory.pressure", "io.pressure"} {
		if !strings.HasPrefix(psi.read(t, f), "some avg10=") {
			t.Errorf("%s: %q", f, psi.read(t, f))
		}
	}

	t.Run("memory", func(t *testing.T) {
		g := newV2Group(t, "mem")
		g.write(t, "memory.max", "64M")
		if got := g.read(t, "memory.max"); got != "67108864" {
			t.Fatalf("memory.max reads %q", got)
		}
		// The control: 16 MiB fit in the group.
		if out, err := g.command(t, "dd", "if=/dev/zero", "of=/dev/null", "bs=16M", "count=1").CombinedOutput(); err != nil {
			t.Fatalf("16 MiB in a 64 MiB group: %v\n%s", err, out)
		}
		if n := g.counter(t, "memory.events", "oom_kill"); n != 0 {
			t.Fatalf("oom_kill %d after 16 MiB", n)
		}
		// dd fills a 256 MiB buffer from /dev/zero: every page is touched.
		err := g.command(t, "dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1").Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("256 MiB in a 64 MiB group: %v, want SIGKILL", err)
		}
		n := g.counter(t, "memory.events", "oom_kill")
		if n != 1 {
			t.Fatalf("memory.events oom_kill %d, want 1", n)
		}
		fmt.Printf("vm: oom_kill %d in the group; the test process (pid %d) lives on\n", n, os.Getpid())
	})

	t.Run("pids", func(t *testing.T) {
		g := newV2Group(t, "pids")
		g.write(t, "pids.max", "8")
		// sh and its background sleeps (off the output pipe); the shell
		// stops at its first refused fork.
		script := `i=0; while [ $i -lt $1 ]; do sleep 600 >/dev/null 2>&1 & i=$((i+1)); done; echo started $i`
		out, err := g.command(t, "sh", "-c", script, "sh", "3").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "started 3" {
			t.Fatalf("3 processes under pids.max 8: %v %q", err, out)
		}
		if n := g.counter(t, "pids.events", "max"); n != 0 {
			t.Fatalf("pids.events max %d after 3 processes", n)
		}
		g.kill(t)
		out, err = g.command(t, "sh", "-c", script, "sh", "30").CombinedOutput()
		if err == nil || strings.Contains(string(out), "started") {
			t.Fatalf("30 processes under pids.max 8 all started: %v %q", err, out)
		}
		n := g.counter(t, "pids.events", "max")
		cur, _ := strconv.Atoi(g.read(t, "pids.current"))
		if n < 1 || cur > 8 {
			t.Fatalf("pids.events max %d, pids.current %d", n, cur)
		}
		fmt.Printf("vm: fork refused %d times (pids.current %d of 8): %s\n", n, cur, strings.TrimSpace(string(out)))
	})

	t.Run("cpu", func(t *testing.T) {
		limited, free := newV2Group(t, "cpu-limited"), newV2Group(t, "cpu-free")
		limited.write(t, "cpu.max", "10000 100000") // 10 % of one CPU
		burn := `while :; do :; done`
		for _, g := range []*v2Group{limited, free} {
			if err := g.command(t, "sh", "-c", burn).Start(); err != nil {
				t.Fatal(err)
			}
		}
		begin := [2]int64{limited.counter(t, "cpu.stat", "usage_usec"), free.counter(t, "cpu.stat", "usage_usec")}
		if !Eventually(Deadline, func() bool {
			return limited.counter(t, "cpu.stat", "nr_throttled") >= 5 &&
				free.counter(t, "cpu.stat", "usage_usec")-begin[1] >= 1_000_000
		}) {
			t.Fatalf("no throttling seen: limited %v, free %v", limited.read(t, "cpu.stat"), free.read(t, "cpu.stat"))
		}
		used := [2]int64{limited.counter(t, "cpu.stat", "usage_usec") - begin[0], free.counter(t, "cpu.stat", "usage_usec") - begin[1]}
		if thr := free.counter(t, "cpu.stat", "nr_throttled"); thr != 0 {
			t.Errorf("the group without cpu.max was throttled %d times", thr)
		}
		// Shares, not absolute times: the limited burner got a fraction of the free one.
		if used[0]*3 > used[1] {
			t.Errorf("limited burner used %d µs, free one %d µs: want under a third", used[0], used[1])
		}
		fmt.Printf("vm: throttled %d times; CPU used %d µs at 10 %% vs %d µs free\n",
			limited.counter(t, "cpu.stat", "nr_throttled"), used[0], used[1])
	})

	t.Run("io", func(t *testing.T) {
		// The scratch disk, raw: direct writes reach it through the
		// group's io.max (buffered ones would be charged at writeback).
		dev, err := os.ReadFile("/sys/block/vda/dev")
		if err != nil {
			t.Fatalf("no scratch disk: %v", err)
		}
		g := newV2Group(t, "io")
		write := func(seek int) time.Duration {
			begin := time.Now()
			out, err := g.command(t, "dd", "if=/dev/zero", "of=/dev/vda", "bs=1M", "count=4",
				"seek="+strconv.Itoa(seek), "oflag=direct").CombinedOutput()
			if err != nil {
				t.Fatalf("dd: %v\n%s", err, out)
			}
			return time.Since(begin)
		}
		// The control: the same write without io.max.
		free := write(0)
		g.write(t, "io.max", strings.TrimSpace(string(dev))+" wbps=1048576")
		limited := write(8)
		// io.stat: "MAJ:MIN rbytes=… wbytes=… …"; both writes are the group's.
		var wbytes int64
		for _, line := range strings.Split(g.read(t, "io.stat"), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == strings.TrimSpace(string(dev)) {
				for _, kv := range f[1:] {
					if v, ok := strings.CutPrefix(kv, "wbytes="); ok {
						wbytes, _ = strconv.ParseInt(v, 10, 64)
					}
				}
			}
		}
		if wbytes < 8<<20 {
			t.Errorf("io.stat wbytes %d, want the 8 MiB written: %q", wbytes, g.read(t, "io.stat"))
		}
		// 4 MiB at 1 MiB/s: about 3 s or more; a share, not a figure.
		if limited < 2*time.Second || free*2 > limited {
			t.Errorf("4 MiB took %v under wbps=1MiB/s, %v without", limited, free)
		}
		fmt.Printf("vm: io throttled: 4 MiB in %v under io.max wbps=1MiB/s, %v without\n",
			limited.Round(time.Millisecond), free.Round(time.Millisecond))
	})

	t.Run("connector", func(t *testing.T) {
		c, err := platform.OpenConnector(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		events := make(chan platform.ProcEvent, 1024)
		go c.Read(func(e platform.ProcEvent) {
			select {
			case events <- e:
			default:
			}
		})
		cmd := exec.Command("true")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := int32(cmd.Process.Pid)
		cmd.Wait()
		deadline := time.After(Deadline)
		for {
			select {
			case e := <-events:
				if e.Kind == platform.EventFork && e.TGID == pid {
					fmt.Printf("vm: fork event for pid %d from %d\n", pid, e.ParentTGID)
					return
				}
			case <-deadline:
				t.Fatalf("no fork event for pid %d", pid)
			}
		}
	})
}

// v2Group is a child of base (see vmGroupBase) in the VM, killed and
// removed after the test.
type v2Group struct {
	dir string
	fd  int
}

func newV2GroupIn(t *testing.T, base, name string) *v2Group {
	t.Helper()
	g := &v2Group{dir: filepath.Join(base, "gdt-vm-"+name)}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(g.dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.fd = fd
	t.Cleanup(func() {
		g.kill(t)
		unix.Close(g.fd)
		if err := os.Remove(g.dir); err != nil {
			t.Error(err)
		}
	})
	return g
}

// command is a command born in the group (clone3 CLONE_INTO_CGROUP).
func (g *v2Group) command(t *testing.T, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.fd}
	cmd.WaitDelay = 10 * time.Second // a child left holding the output pipe
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// kill ends every process in the group (cgroup.kill) and waits until it is empty.
func (g *v2Group) kill(t *testing.T) {
	t.Helper()
	g.write(t, "cgroup.kill", "1")
	if !Eventually(CleanDeadline, func() bool { return g.counter(t, "cgroup.events", "populated") == 0 }) {
		t.Fatalf("%s still populated", g.dir)
	}
}

func (g *v2Group) write(t *testing.T, file, value string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(g.dir, file), []byte(value), 0); err != nil {
		t.Fatal(err)
	}
}

func (g *v2Group) read(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(g.dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// counter is the value of key in a flat-keyed file (memory.events, cpu.stat).
func (g *v2Group) counter(t *testing.T, file, key string) int64 {
	t.Helper()
	s := bufio.NewScanner(strings.NewReader(g.read(t, file)))
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), " "); ok && k == key {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", file, s.Text())
			}
			return n
		}
	}
	t.Fatalf("%s has no %s", file, key)
	return 0
}
