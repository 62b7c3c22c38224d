package enforce

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// cpuPeriodUsec is the CFS period of every group: CPUPercent of one
// core is CPUPercent × 1000 µs of CPU time per 100 ms.
const cpuPeriodUsec = 100000

// groupWait bounds Freeze, Thaw and Kill.
const groupWait = 5 * time.Second

// noCgroupKill makes Kill take the way of kernels without cgroup.kill
// (< 5.14). Set only by tests.
var noCgroupKill bool

// groupWrite is one value for one control file of a customer's group.
type groupWrite struct {
	ctrl  string // v1: the hierarchy's controller; v2: ""
	file  string // relative to the u<UID> directory
	value string
}

func (w groupWrite) String() string { return w.file + "=" + w.value }

// NewGroups returns the cgroup filesystem driver for layout l: v2 when
// the controllers are on the cgroup2 mount, else v1. base names the
// group under guardd's own one that holds every customer's (e.g.
// "guardd-users"). platform.ErrUnsupported when l has neither.
func NewGroups(l *platform.CgroupLayout, base string) (GroupDriver, error) {
	switch l.Mode {
	case platform.CgroupV2:
		return NewCgroup2Groups(l.V2, base)
	case platform.CgroupV1:
		return NewCgroup1Groups(l, base)
	}
	return nil, fmt.Errorf("cgroups: %w (mode %s)", platform.ErrUnsupported, l.Mode)
}

func checkBase(base string) error {
	if base == "" || base == "." || base == ".." || base == "guardd" || strings.ContainsAny(base, "/\n") || len(base) > 64 {
		return fmt.Errorf("cgroups: bad base group name %q", base)
	}
	return nil
}

func userGroup(uid uint32) string { return "u" + strconv.FormatUint(uint64(uid), 10) }

// writeValue writes value to a control file in one write(2), as cgroupfs
// wants it. The error names the file and the value.
func writeValue(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		_, err = f.Write([]byte(value))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, cause(err))
	}
	return nil
}

// cause is the errno inside a *PathError, for an error that names the
// file itself.
func cause(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// mkdirGroup creates a group; one that exists is fine.
func mkdirGroup(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create group %s: %w", dir, cause(err))
	}
	return nil
}

// readPids reads a cgroup.procs.
func readPids(path string) ([]int32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []int32
	for _, f := range bytes.Fields(b) {
		n, err := strconv.ParseInt(string(f), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: bad pid %q", path, f)
		}
		out = append(out, int32(n))
	}
	return out, nil
}

// eventValue is KEY's value in a cgroup.events ("populated 1\nfrozen 0").
func eventValue(b []byte, key string) string {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if k, v, ok := bytes.Cut(line, []byte{' '}); ok && string(k) == key {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}

// waitEvent waits until cgroup.events at path says KEY WANT. The kernel
// signals a change of the file with POLLPRI (cgroup-v2.rst, "cgroup.events");
// the poll is cut into short slices so that a change between the read
// and the poll costs at most one slice.
func waitEvent(path, key, want string, timeout time.Duration) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 512)
	for {
		n, err := unix.Pread(fd, buf, 0)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if n > 0 && eventValue(buf[:n], key) == want {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%s: %s is not %s after %v", path, key, want, timeout)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		unix.Poll(fds, int(min(left, 50*time.Millisecond)/time.Millisecond)+1)
	}
}

// v2Writes are the writes of l to a v2 group whose parent enabled ctrls;
// ioMax is the group's io.max as it is (devices limited before and no
// longer listed get their limits lifted).
func v2Writes(l Limits, ctrls []string, ioMax []byte) ([]groupWrite, error) {
	var ws []groupWrite
	need := func(ctrl string, set bool) (bool, error) {
		if slices.Contains(ctrls, ctrl) {
			return true, nil
		}
		if set {
			return false, fmt.Errorf("%s limit: the %s controller is not available to guardd's groups", ctrl, ctrl)
		}
		return false, nil
	}
	if ok, err := need("cpu", l.CPUPercent > 0); err != nil {
		return nil, err
	} else if ok {
		ws = append(ws, groupWrite{file: "cpu.max", value: cpuMax(l.CPUPercent)})
	}
	if ok, err := need("memory", l.MemoryBytes > 0); err != nil {
		return nil, err
	} else if ok {
		// memory.high first: lowering both, the reclaim starts at the
		// softer one.
		ws = append(ws, groupWrite{file: "memory.high", value: maxOr(l.MemoryBytes / 10 * 9)},
			groupWrite{file: "memory.max", value: maxOr(l.MemoryBytes)})
	}
	if ok, err := need("pids", l.Pids > 0); err != nil {
		return nil, err
	} else if ok {
		ws = append(ws, groupWrite{file: "pids.max", value: maxOr(uint64(l.Pids))})
	}
	if ok, err := need("io", len(l.IO) > 0); err != nil {
		return nil, err
	} else if ok {
		listed := map[string]bool{}
		for _, d := range l.IO {
			dev := fmt.Sprintf("%d:%d", d.Major, d.Minor)
			listed[dev] = true
			ws = append(ws, groupWrite{file: "io.max", value: fmt.Sprintf("%s rbps=%s wbps=%s", dev, maxOr(d.ReadBPS), maxOr(d.WriteBPS))})
		}
		for _, line := range strings.Split(string(ioMax), "\n") {
			if dev, _, ok := strings.Cut(line, " "); ok && !listed[dev] {
				ws = append(ws, groupWrite{file: "io.max", value: dev + " rbps=max wbps=max"})
			}
		}
	}
	return ws, nil
}

func cpuMax(percent uint32) string {
	if percent == 0 {
		return fmt.Sprintf("max %d", cpuPeriodUsec)
	}
	return fmt.Sprintf("%d %d", uint64(percent)*cpuPeriodUsec/100, cpuPeriodUsec)
}

func maxOr(v uint64) string {
	if v == 0 {
		return "max"
	}
	return strconv.FormatUint(v, 10)
}

func minusOneOr(v uint64) string {
	if v == 0 {
		return "-1"
	}
	return strconv.FormatUint(v, 10)
}

// v1Writes are the writes of l to the v1 hierarchies has says exist;
// readBps and writeBps are the group's blkio.throttle files as they are.
func v1Writes(l Limits, has func(ctrl string) bool, readBps, writeBps []byte) ([]groupWrite, error) {
	var ws []groupWrite
	check := func(ctrl string, set bool) (bool, error) {
		if has(ctrl) {
			return true, nil
		}
		if set {
			return false, fmt.Errorf("%s limit: no %s hierarchy", ctrl, ctrl)
		}
		return false, nil
	}
	if ok, err := check("cpu", l.CPUPercent > 0); err != nil {
		return nil, err
	} else if ok {
		quota := "-1"
		if l.CPUPercent > 0 {
			quota = strconv.FormatUint(uint64(l.CPUPercent)*cpuPeriodUsec/100, 10)
		}
		ws = append(ws, groupWrite{"cpu", "cpu.cfs_period_us", strconv.Itoa(cpuPeriodUsec)},
			groupWrite{"cpu", "cpu.cfs_quota_us", quota})
	}
	if ok, err := check("memory", l.MemoryBytes > 0); err != nil {
		return nil, err
	} else if ok {
		ws = append(ws, groupWrite{"memory", "memory.limit_in_bytes", minusOneOr(l.MemoryBytes)},
			groupWrite{"memory", "memory.soft_limit_in_bytes", minusOneOr(l.MemoryBytes / 10 * 9)})
	}
	if ok, err := check("pids", l.Pids > 0); err != nil {
		return nil, err
	} else if ok {
		ws = append(ws, groupWrite{"pids", "pids.max", maxOr(uint64(l.Pids))})
	}
	if ok, err := check("blkio", len(l.IO) > 0); err != nil {
		return nil, err
	} else if ok {
		for _, f := range []struct {
			file string
			cur  []byte
			bps  func(IOLimit) uint64
		}{
			{"blkio.throttle.read_bps_device", readBps, func(d IOLimit) uint64 { return d.ReadBPS }},
			{"blkio.throttle.write_bps_device", writeBps, func(d IOLimit) uint64 { return d.WriteBPS }},
		} {
			listed := map[string]bool{}
			for _, d := range l.IO {
				dev := fmt.Sprintf("%d:%d", d.Major, d.Minor)
				listed[dev] = true
				// "MAJ:MIN 0" removes the device's rule (blkio-controller.rst).
				ws = append(ws, groupWrite{"blkio", f.file, fmt.Sprintf("%s %d", dev, f.bps(d))})
			}
			for _, line := range strings.Split(string(f.cur), "\n") {
				if dev, _, ok := strings.Cut(line, " "); ok && !listed[dev] {
					ws = append(ws, groupWrite{"blkio", f.file, dev + " 0"})
				}
			}
		}
	}
	return ws, nil
}

// placeProc moves target into the groups whose cgroup.procs files are
// given: the identity is checked right before the first write (a pidfd
// opened, then the start time read) and after the last one, so that a
// pid reused in between is reported, not taken for the process.
func placeProc(target platform.ProcID, procs []string) error {
	h, err := open(target)
	if err != nil {
		return err
	}
	defer h.close()
	for _, f := range procs {
		if err := writeValue(f, strconv.Itoa(int(target.PID))); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return platform.ErrGone
			}
			return err
		}
	}
	if err := checkStart(target); err != nil {
		if alive, _ := h.alive(); !alive {
			return platform.ErrGone
		}
		return fmt.Errorf("place %s: the pid changed hands while it was moved", target)
	}
	return nil
}

// killLoop ends every process of a leaf: freeze it (so nothing forks),
// SIGKILL each pid listed in procs through a pidfd after checking, with
// the pidfd open, that the pid is still in the leaf (member), thaw it so
// the signals are delivered, and again until the leaf is empty; bounded.
// It is v1's Kill, and v2's where the kernel has no cgroup.kill (< 5.14).
func killLoop(procs string, member func(pid int32) bool, freeze, thaw func() error, timeout time.Duration) (int, error) {
	killed := map[int32]bool{}
	deadline := time.Now().Add(timeout)
	for {
		pids, err := readPids(procs)
		if err != nil {
			return len(killed), err
		}
		if len(pids) == 0 {
			return len(killed), nil
		}
		if time.Now().After(deadline) {
			return len(killed), fmt.Errorf("%s: %d processes left after %v", procs, len(pids), timeout)
		}
		frozen := freeze != nil && freeze() == nil
		if frozen {
			if pids, err = readPids(procs); err != nil {
				thaw()
				return len(killed), err
			}
		}
		for _, pid := range pids {
			if killMember(pid, member) {
				killed[pid] = true
			}
		}
		if freeze != nil {
			thaw() // even when the freeze timed out: never leave it FREEZING
		}
		// The killed die on their way out of the kernel: wait for the
		// leaf to empty, briefly, before another round.
		for wait := time.Millisecond; wait < 64*time.Millisecond; wait *= 2 {
			if left, _ := readPids(procs); len(left) == 0 {
				break
			}
			time.Sleep(wait)
		}
	}
}

// killMember sends SIGKILL to pid if it is still in the leaf. A pidfd
// signals only the process it was opened on; the check reads whoever
// holds the pid, which is that process as long as it lives (and once it
// died the signal fails). Without pidfds (kernels < 5.3) the leaf is
// frozen: its members do not exit between the check and kill(2) unless
// killed.
func killMember(pid int32, member func(int32) bool) bool {
	fd, err := -1, error(unix.ENOSYS)
	if !noPidfd {
		fd, err = unix.PidfdOpen(int(pid), 0)
	}
	switch {
	case errors.Is(err, unix.ENOSYS):
		if member(pid) {
			return unix.Kill(int(pid), unix.SIGKILL) == nil
		}
		return false
	case err != nil:
		return false // gone
	}
	defer unix.Close(fd)
	if !member(pid) {
		return false
	}
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil
}

// inGroup reports whether pid is in group (as /proc/PID/cgroup says it)
// of hierarchy h.
func inGroup(pid int32, h *platform.CgroupHierarchy, group string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/cgroup")
	if err != nil {
		return false
	}
	p, err := platform.ProcCgroupIn(b, h)
	return err == nil && p == group
}

// groupPath is a group below the own one, as /proc/PID/cgroup shows it.
func groupPath(h *platform.CgroupHierarchy, rel string) string {
	return strings.TrimSuffix(h.Own, "/") + "/" + rel
}

// removeTree removes a customer's group directories (leaves first) after
// checking both leaves are empty.
func removeTree(udir string, uid uint32) error {
	for _, leaf := range []string{"work", "kept"} {
		pids, err := readPids(filepath.Join(udir, leaf, "cgroup.procs"))
		if err == nil && len(pids) > 0 {
			return fmt.Errorf("remove group u%d: %d processes in %s", uid, len(pids), leaf)
		}
	}
	for _, d := range []string{filepath.Join(udir, "work"), filepath.Join(udir, "kept"), udir} {
		if err := unix.Rmdir(d); err != nil && err != unix.ENOENT {
			return fmt.Errorf("remove group %s: %w", d, err)
		}
	}
	return nil
}

// cgroup2 is the driver on a cgroup2 mount.
type cgroup2 struct {
	h     *platform.CgroupHierarchy
	own   string   // guardd's own group's directory
	base  string   // the base group's directory
	rel   string   // the base group relative to the own group
	ctrls []string // controllers enabled for the customers' groups
	wait  time.Duration
}

// NewCgroup2Groups sets up the base group under guardd's own group of a
// cgroup2 hierarchy and enables there the controllers the limits use
// (cpu, memory, pids, io: those the own group has). With none available
// it still places, freezes and kills (those are cgroup core files).
func NewCgroup2Groups(h *platform.CgroupHierarchy, base string) (GroupDriver, error) {
	if h == nil || h.Version != 2 {
		return nil, errors.New("cgroups: no cgroup2 hierarchy")
	}
	if err := checkBase(base); err != nil {
		return nil, err
	}
	g := &cgroup2{h: h, own: h.Dir(), rel: base, wait: groupWait}
	g.base = filepath.Join(g.own, base)
	for _, c := range []string{"cpu", "memory", "pids", "io"} {
		if h.Has(c) {
			g.ctrls = append(g.ctrls, c)
		}
	}
	if len(g.ctrls) > 0 {
		if err := g.enable(); err != nil {
			return nil, err
		}
	}
	if err := mkdirGroup(g.base); err != nil {
		return nil, err
	}
	for _, c := range g.ctrls {
		if err := writeValue(filepath.Join(g.base, "cgroup.subtree_control"), "+"+c); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// enable turns g.ctrls on in the own group's subtree_control. cgroup v2
// has "no internal processes": a group other than the root that enables
// controllers for its children may hold no process itself (EBUSY). So
// when guardd's own group holds guardd, guardd first moves itself into
// a leaf <own>/guardd (its own process only: every thread moves with
// it; other processes of the group are not guardd's to move, and if any
// is left the write fails with an error that says so).
func (g *cgroup2) enable() error {
	sc := filepath.Join(g.own, "cgroup.subtree_control")
	cur, err := os.ReadFile(sc)
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	have := strings.Fields(string(cur))
	if !slices.ContainsFunc(g.ctrls, func(c string) bool { return !slices.Contains(have, c) }) {
		return nil
	}
	_, err = os.Stat(filepath.Join(g.own, "cgroup.type"))
	root := errors.Is(err, os.ErrNotExist) // the root group has no cgroup.type: it may hold processes
	if pids, _ := readPids(filepath.Join(g.own, "cgroup.procs")); !root && len(pids) > 0 {
		self := int32(os.Getpid())
		if slices.Contains(pids, self) {
			leaf := filepath.Join(g.own, "guardd")
			if err := mkdirGroup(leaf); err != nil {
				return err
			}
			if err := writeValue(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(int(self))); err != nil {
				return err
			}
		}
	}
	for _, c := range g.ctrls {
		if slices.Contains(have, c) {
			continue
		}
		if err := writeValue(sc, "+"+c); err != nil {
			if errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("%w (processes other than guardd are in %s)", err, g.own)
			}
			return err
		}
	}
	return nil
}

func (g *cgroup2) Name() string { return "cgroup2" }

func (g *cgroup2) udir(uid uint32) string { return filepath.Join(g.base, userGroup(uid)) }

func (g *cgroup2) Ensure(uid uint32, l Limits) error {
	u := g.udir(uid)
	for _, d := range []string{u, filepath.Join(u, "work"), filepath.Join(u, "kept")} {
		if err := mkdirGroup(d); err != nil {
			return err
		}
	}
	var ioMax []byte
	if slices.Contains(g.ctrls, "io") {
		ioMax, _ = os.ReadFile(filepath.Join(u, "io.max"))
	}
	ws, err := v2Writes(l, g.ctrls, ioMax)
	if err != nil {
		return fmt.Errorf("group u%d: %w", uid, err)
	}
	for _, w := range ws {
		if err := writeValue(filepath.Join(u, w.file), w.value); err != nil {
			return err
		}
	}
	return nil
}

func (g *cgroup2) Place(p platform.ProcID, uid uint32, kept bool) error {
	return placeProc(p, []string{filepath.Join(g.udir(uid), leafName(kept), "cgroup.procs")})
}

func (g *cgroup2) Freeze(uid uint32) error { return g.freeze(uid, "1") }
func (g *cgroup2) Thaw(uid uint32) error   { return g.freeze(uid, "0") }

func (g *cgroup2) freeze(uid uint32, v string) error {
	work := filepath.Join(g.udir(uid), "work")
	if err := writeValue(filepath.Join(work, "cgroup.freeze"), v); err != nil {
		return err
	}
	return waitEvent(filepath.Join(work, "cgroup.events"), "frozen", v, g.wait)
}

func (g *cgroup2) Kill(uid uint32) (int, error) {
	work := filepath.Join(g.udir(uid), "work")
	procs := filepath.Join(work, "cgroup.procs")
	pids, err := readPids(procs)
	if err != nil {
		return 0, err
	}
	if _, err := os.Stat(filepath.Join(work, "cgroup.kill")); err != nil || noCgroupKill {
		group := groupPath(g.h, filepath.Join(g.rel, userGroup(uid), "work"))
		return killLoop(procs, func(pid int32) bool { return inGroup(pid, g.h, group) },
			func() error { return g.Freeze(uid) }, func() error { return g.Thaw(uid) }, g.wait)
	}
	if len(pids) == 0 {
		return 0, nil
	}
	// cgroup.kill: the kernel signals every process of the leaf and its
	// forks in flight at once (kernel ≥ 5.14).
	if err := writeValue(filepath.Join(work, "cgroup.kill"), "1"); err != nil {
		return 0, err
	}
	return len(pids), waitEvent(filepath.Join(work, "cgroup.events"), "populated", "0", g.wait)
}

func (g *cgroup2) Members(uid uint32) (work, kept []int32, err error) {
	u := g.udir(uid)
	if work, err = readPids(filepath.Join(u, "work", "cgroup.procs")); err != nil {
		return nil, nil, err
	}
	kept, err = readPids(filepath.Join(u, "kept", "cgroup.procs"))
	return work, kept, err
}

func (g *cgroup2) Remove(uid uint32) error { return removeTree(g.udir(uid), uid) }

func (g *cgroup2) Close() error { return nil }

// cgroup1 is the driver on the v1 hierarchies.
type cgroup1 struct {
	hs      []*platform.CgroupHierarchy // distinct, in CgroupControllers order
	rel     string                      // the base group relative to each own group
	byCtrl  map[string]*platform.CgroupHierarchy
	procs   *platform.CgroupHierarchy // where Members and Kill look
	freezer *platform.CgroupHierarchy // nil: no freezer hierarchy
	wait    time.Duration
}

// NewCgroup1Groups creates the base group under guardd's own group of
// every v1 hierarchy of l guardd uses.
func NewCgroup1Groups(l *platform.CgroupLayout, base string) (GroupDriver, error) {
	if err := checkBase(base); err != nil {
		return nil, err
	}
	g := &cgroup1{hs: l.V1Hierarchies(), rel: base, byCtrl: l.V1, freezer: l.V1["freezer"], wait: groupWait}
	if len(g.hs) == 0 {
		return nil, errors.New("cgroups: no v1 hierarchy")
	}
	v1 := *l
	v1.Mode = platform.CgroupV1 // the v1 placement hierarchy, whatever l's mode says
	g.procs = v1.Placement()
	for _, h := range g.hs {
		if err := g.mkdir(h, filepath.Join(h.Dir(), base)); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// mkdir creates a group; in the memory hierarchy it makes the group
// hierarchical where the kernel still lets memory.use_hierarchy be 0
// (kernels before 5.16, where it is always 1): a limit on u<UID> must
// cover work and kept, which it only does when set before they exist.
func (g *cgroup1) mkdir(h *platform.CgroupHierarchy, dir string) error {
	if err := mkdirGroup(dir); err != nil {
		return err
	}
	if h.Has("memory") {
		uh := filepath.Join(dir, "memory.use_hierarchy")
		if b, err := os.ReadFile(uh); err == nil && strings.TrimSpace(string(b)) == "0" {
			return writeValue(uh, "1")
		}
	}
	return nil
}

func (g *cgroup1) Name() string { return "cgroup1" }

func (g *cgroup1) udir(h *platform.CgroupHierarchy, uid uint32) string {
	return filepath.Join(h.Dir(), g.rel, userGroup(uid))
}

func (g *cgroup1) Ensure(uid uint32, l Limits) error {
	for _, h := range g.hs {
		u := g.udir(h, uid)
		for _, d := range []string{u, filepath.Join(u, "work"), filepath.Join(u, "kept")} {
			if err := g.mkdir(h, d); err != nil {
				return err
			}
		}
	}
	var rbps, wbps []byte
	if h := g.byCtrl["blkio"]; h != nil {
		rbps, _ = os.ReadFile(filepath.Join(g.udir(h, uid), "blkio.throttle.read_bps_device"))
		wbps, _ = os.ReadFile(filepath.Join(g.udir(h, uid), "blkio.throttle.write_bps_device"))
	}
	ws, err := v1Writes(l, func(c string) bool { return g.byCtrl[c] != nil }, rbps, wbps)
	if err != nil {
		return fmt.Errorf("group u%d: %w", uid, err)
	}
	for _, w := range ws {
		if err := writeValue(filepath.Join(g.udir(g.byCtrl[w.ctrl], uid), w.file), w.value); err != nil {
			return err
		}
	}
	return nil
}

// Place writes the pid to the leaf of every hierarchy: v1 hierarchies
// are independent, a process is in one group of each. The placement
// hierarchy (the one ProcCgroupPath reads) comes last: a child forked
// between two writes stays where it was in the hierarchies not written
// yet, and then also in that one, so a check of placement finds it
// outside, never half placed and taken for placed.
func (g *cgroup1) Place(p platform.ProcID, uid uint32, kept bool) error {
	var files []string
	for _, h := range g.hs {
		if h != g.procs {
			files = append(files, filepath.Join(g.udir(h, uid), leafName(kept), "cgroup.procs"))
		}
	}
	files = append(files, filepath.Join(g.udir(g.procs, uid), leafName(kept), "cgroup.procs"))
	return placeProc(p, files)
}

func (g *cgroup1) Freeze(uid uint32) error { return g.freeze(uid, "FROZEN") }
func (g *cgroup1) Thaw(uid uint32) error   { return g.freeze(uid, "THAWED") }

// freeze writes freezer.state and re-reads it until the kernel reports
// the state reached (v1 has no event for it; FREEZING is the way there).
func (g *cgroup1) freeze(uid uint32, state string) error {
	if g.freezer == nil {
		return errors.New("freeze: no freezer hierarchy")
	}
	f := filepath.Join(g.udir(g.freezer, uid), "work", "freezer.state")
	if err := writeValue(f, state); err != nil {
		return err
	}
	deadline := time.Now().Add(g.wait)
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 20*time.Millisecond) {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) == state {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s, not %s, after %v", f, bytes.TrimSpace(b), state, g.wait)
		}
		time.Sleep(wait)
	}
}

func (g *cgroup1) Kill(uid uint32) (int, error) {
	h := g.procs
	if g.freezer != nil {
		h = g.freezer
	}
	procs := filepath.Join(g.udir(h, uid), "work", "cgroup.procs")
	group := groupPath(h, filepath.Join(g.rel, userGroup(uid), "work"))
	var freeze, thaw func() error
	if g.freezer != nil {
		freeze, thaw = func() error { return g.Freeze(uid) }, func() error { return g.Thaw(uid) }
	}
	return killLoop(procs, func(pid int32) bool { return inGroup(pid, h, group) }, freeze, thaw, g.wait)
}

func (g *cgroup1) Members(uid uint32) (work, kept []int32, err error) {
	u := g.udir(g.procs, uid)
	if work, err = readPids(filepath.Join(u, "work", "cgroup.procs")); err != nil {
		return nil, nil, err
	}
	kept, err = readPids(filepath.Join(u, "kept", "cgroup.procs"))
	return work, kept, err
}

func (g *cgroup1) Remove(uid uint32) error {
	for _, h := range g.hs {
		if pids, err := readPids(filepath.Join(g.udir(h, uid), "work", "cgroup.procs")); err == nil && len(pids) > 0 {
			return fmt.Errorf("remove group u%d: %d processes in work of %s", uid, len(pids), h.Mount)
		}
	}
	for _, h := range g.hs {
		if err := removeTree(g.udir(h, uid), uid); err != nil {
			return err
		}
	}
	return nil
}

func (g *cgroup1) Close() error { return nil }
