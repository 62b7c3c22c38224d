//go:build linux

package enforce

// The systemd group driver: where systemd is PID 1 on a unified (cgroup
// v2 only) hierarchy, systemd owns the customers' groups, so that
// `systemctl status`, `systemd-cgtop` and systemd's own accounting see
// them and systemd never fights guardd over its tree.
//
// One transient scope per customer, guardd-u<UID>.scope, in guardd.slice
// (Slice=; systemd creates the slice implicitly), Delegate=yes,
// CollectMode=inactive-or-failed, a Description naming the uid and guardd,
// the limits as unit properties (CPUQuotaPerSecUSec, MemoryHigh,
// MemoryMax, TasksMax, IOReadBandwidthMax, IOWriteBandwidthMax). Inside the
// delegated group guardd makes two leaves: `work`, where the customer's
// processes go and which Freeze, Thaw and Kill act on, and `kept`, for
// processes that must survive those (the limits of the scope still apply
// to them).
//
// A scope cannot start empty: Ensure only remembers the limits while the
// scope does not exist; the first Place starts it with PIDs=[pid] and the
// limits, waits for the job, makes the leaves and moves the process into
// its leaf (AttachProcessesToUnit). When the customer's last process
// exits, systemd stops and collects the scope; the next Place starts it
// again with the remembered limits.
//
// Freeze, Thaw and Kill write the cgroup v2 core files of the `work` leaf
// (cgroup.freeze, cgroup.kill: present without any controller), and wait
// on cgroup.events with a bounded wait: systemd's FreezeUnit and KillUnit
// would act on the whole scope, `kept` included.
//
// On a v1 or hybrid host systemd cannot delegate the v1 controllers to a
// scope (systemd.resource-control(5): delegation is safe on the unified
// hierarchy only), so NewSystemdGroups refuses with ErrSystemdNotUnified
// and the caller uses the cgroup filesystem driver instead.
//
// Safety: every call names only guardd-u<UID>.scope units, for uids at or
// above the min_uid given to the constructor (never 0), and a process is
// placed only if its pid still names the process the caller saw (start
// time re-read right before) and it runs as that uid.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// ScopeLimits are one customer's kernel limits as systemd takes them;
// zero = none (Limits converts to them for the GroupDriver methods).
type ScopeLimits struct {
	CPUPercent            float64  // percent of one core (CPUQuotaPerSecUSec = CPUPercent*10ms per second)
	MemoryHigh, MemoryMax uint64   // bytes
	TasksMax              int      // processes+threads
	IOReadBPS, IOWriteBPS uint64   // bytes per second, per device in Devices
	Devices               []string // block device paths (e.g. /dev/sda) the io limits apply to
}

// ErrSystemdNotUnified: systemd runs a v1 or hybrid cgroup hierarchy.
var ErrSystemdNotUnified = errors.New("systemd runs a cgroup v1 or hybrid hierarchy: it cannot delegate v1 controllers to a scope; use the cgroup filesystem driver")

const (
	// GuarddSlice holds every customer's scope.
	GuarddSlice = "guardd.slice"
	leafWork    = "work"
	leafKept    = "kept"
	// cgroupRoot is where systemd mounts the unified hierarchy.
	cgroupRoot = "/sys/fs/cgroup"
)

// SystemdGroups is the GroupDriver that lets systemd own the groups.
type SystemdGroups struct {
	conn   *sddbus.Conn
	minUID atomic.Uint32 // a reload may raise it (SetMinUID)
	root   string        // the cgroup2 mount the scopes' ControlGroup is relative to
	wait   time.Duration // bound of every call to systemd and of every wait on cgroup.events

	mu     sync.Mutex // guards the fields below
	limits map[uint32]ScopeLimits
	closed bool
}

var _ GroupDriver = (*SystemdGroups)(nil)

// scopeLimits are the door's limits as unit properties: memory.high at
// the same share of the limit as the filesystem drivers write, io limits
// by device node (systemd resolves /dev/block/MAJ:MIN).
func scopeLimits(l Limits) ScopeLimits {
	out := ScopeLimits{CPUPercent: float64(l.CPUPercent), MemoryMax: l.MemoryBytes, TasksMax: int(l.Pids)}
	if l.MemoryBytes > 0 {
		out.MemoryHigh = l.MemoryBytes / 10 * 9 // as the filesystem drivers write memory.high
	}
	for _, io := range l.IO {
		out.Devices = append(out.Devices, fmt.Sprintf("/dev/block/%d:%d", io.Major, io.Minor))
		out.IOReadBPS, out.IOWriteBPS = max(out.IOReadBPS, io.ReadBPS), max(out.IOWriteBPS, io.WriteBPS)
	}
	return out
}

// Ensure is EnsureScope with the door's limits (GroupDriver).
func (d *SystemdGroups) Ensure(uid uint32, l Limits) error { return d.EnsureScope(uid, scopeLimits(l)) }

// Place is PlaceScope in the door's argument order (GroupDriver).
func (d *SystemdGroups) Place(p platform.ProcID, uid uint32, kept bool) error {
	return d.PlaceScope(uid, p, kept)
}

// Kill is KillWork, counting the processes it ended (GroupDriver).
func (d *SystemdGroups) Kill(uid uint32) (int, error) {
	work, _, _ := d.Members(uid)
	return len(work), d.KillWork(uid)
}

// NewSystemdGroups connects to PID 1 over its private socket
// (/run/systemd/private: no dbus-daemon needed) and refuses where the
// hierarchy is not unified. minUID is the lowest uid it acts on (≥ 1).
// ctx bounds the connecting only: the driver outlives it.
func NewSystemdGroups(ctx context.Context, minUID uint32) (*SystemdGroups, error) {
	if minUID == 0 {
		return nil, errors.New("systemd groups: min_uid must be at least 1 (never uid 0)")
	}
	if err := checkUnified(cgroupRoot); err != nil {
		return nil, err
	}
	conn, err := dialSystemd(ctx)
	if err != nil {
		return nil, fmt.Errorf("systemd groups: connecting to systemd: %w", err)
	}
	d := &SystemdGroups{conn: conn, root: cgroupRoot, wait: 10 * time.Second, limits: map[uint32]ScopeLimits{}}
	d.minUID.Store(minUID)
	return d, nil
}

// dialSystemd connects to PID 1 within ctx. godbus closes a connection
// when the context it was dialled with is done, so the dial gets ctx
// without its cancellation: a caller's deferred cancel must not close
// the driver's connection (seen: "dbus: connection closed by user" at
// the first placement).
func dialSystemd(ctx context.Context) (*sddbus.Conn, error) {
	type dialled struct {
		conn *sddbus.Conn
		err  error
	}
	ch := make(chan dialled, 1)
	go func() {
		c, err := sddbus.NewSystemdConnectionContext(context.WithoutCancel(ctx))
		ch <- dialled{c, err}
	}()
	select {
	case d := <-ch:
		return d.conn, d.err
	case <-ctx.Done():
		go func() {
			if d := <-ch; d.conn != nil {
				d.conn.Close() // too late: nobody holds it
			}
		}()
		return nil, ctx.Err()
	}
}

// SetMinUID changes the lowest uid the driver acts on (a reload); 0 is
// refused.
func (d *SystemdGroups) SetMinUID(minUID uint32) error {
	if minUID == 0 {
		return errors.New("systemd groups: min_uid must be at least 1 (never uid 0)")
	}
	d.minUID.Store(minUID)
	return nil
}

// checkUnified returns ErrSystemdNotUnified unless root is a cgroup2 mount
// (on a hybrid host it is a tmpfs of v1 hierarchies).
func checkUnified(root string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return fmt.Errorf("systemd groups: %s: %w", root, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return ErrSystemdNotUnified
	}
	return nil
}

func (*SystemdGroups) Name() string { return "systemd" }

// ScopeName is the unit of a customer's group.
func ScopeName(uid uint32) string { return "guardd-u" + strconv.FormatUint(uint64(uid), 10) + ".scope" }

func (d *SystemdGroups) check(uid uint32) error {
	if lo := d.minUID.Load(); uid == 0 || lo == 0 || uid < lo {
		return fmt.Errorf("systemd groups: uid %d is below min_uid %d: refused", uid, lo)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("systemd groups: closed")
	}
	return nil
}

func (d *SystemdGroups) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d.wait)
}

// limitProps are the unit properties of lim. A zero limit is sent as
// infinity (and an empty io list), so that a change in place also
// removes a limit the policy no longer sets.
func limitProps(lim ScopeLimits) []sddbus.Property {
	inf := func(v uint64) uint64 {
		if v == 0 {
			return math.MaxUint64
		}
		return v
	}
	cpu := uint64(math.MaxUint64)
	if lim.CPUPercent > 0 {
		// systemd.resource-control(5): CPUQuota=100% is one core,
		// 1 s of CPU time per second; 1 % is 10 ms = 10,000 µs.
		cpu = uint64(math.Round(lim.CPUPercent * 10_000))
	}
	tasks := uint64(math.MaxUint64)
	if lim.TasksMax > 0 {
		tasks = uint64(lim.TasksMax)
	}
	return []sddbus.Property{
		{Name: "CPUQuotaPerSecUSec", Value: godbus.MakeVariant(cpu)},
		{Name: "MemoryHigh", Value: godbus.MakeVariant(inf(lim.MemoryHigh))},
		{Name: "MemoryMax", Value: godbus.MakeVariant(inf(lim.MemoryMax))},
		{Name: "TasksMax", Value: godbus.MakeVariant(tasks)},
		{Name: "IOReadBandwidthMax", Value: godbus.MakeVariant(ioLimits(lim.Devices, lim.IOReadBPS))},
		{Name: "IOWriteBandwidthMax", Value: godbus.MakeVariant(ioLimits(lim.Devices, lim.IOWriteBPS))},
	}
}

// ioLimit is one (path, bytes per second) of IO*BandwidthMax, D-Bus "(st)".
type ioLimit struct {
	Path string
	BPS  uint64
}

// ioLimits is the D-Bus "a(st)" of one io limit; empty (systemd resets the
// list) when the limit is zero.
func ioLimits(devs []string, bps uint64) []ioLimit {
	out := []ioLimit{}
	if bps == 0 {
		return out
	}
	for _, dev := range devs {
		out = append(out, ioLimit{Path: dev, BPS: bps})
	}
	return out
}

// startProps are the properties of a customer's new scope, pid its first
// process.
func startProps(uid uint32, pid int32, lim ScopeLimits) []sddbus.Property {
	props := []sddbus.Property{
		sddbus.PropDescription(fmt.Sprintf("guardd: group of customer uid %d (made by guardd)", uid)),
		sddbus.PropSlice(GuarddSlice),
		{Name: "Delegate", Value: godbus.MakeVariant(true)},
		{Name: "CollectMode", Value: godbus.MakeVariant("inactive-or-failed")},
		sddbus.PropPids(uint32(pid)),
	}
	return append(props, limitProps(lim)...)
}

// Ensure remembers uid's limits and, when its scope runs, sets them in
// place (runtime: nothing is written to /etc).
func (d *SystemdGroups) EnsureScope(uid uint32, lim ScopeLimits) error {
	if err := d.check(uid); err != nil {
		return err
	}
	lim.Devices = append([]string(nil), lim.Devices...)
	d.mu.Lock()
	d.limits[uid] = lim
	d.mu.Unlock()
	ctx, cancel := d.ctx()
	defer cancel()
	active, err := d.active(ctx, uid)
	if err != nil || !active {
		return err // not running: the next Place starts it with lim
	}
	if err := d.conn.SetUnitPropertiesContext(ctx, ScopeName(uid), true, limitProps(lim)...); err != nil {
		// Collected meanwhile: the next Place starts it with lim.
		if active, err2 := d.active(ctx, uid); err2 == nil && !active {
			return nil
		}
		return fmt.Errorf("systemd groups: setting the limits of %s: %w", ScopeName(uid), err)
	}
	return nil
}

// active says whether uid's scope runs (has processes).
func (d *SystemdGroups) active(ctx context.Context, uid uint32) (bool, error) {
	p, err := d.conn.GetUnitPropertyContext(ctx, ScopeName(uid), "ActiveState")
	if err != nil {
		return false, fmt.Errorf("systemd groups: state of %s: %w", ScopeName(uid), err)
	}
	s, _ := p.Value.Value().(string)
	return s == "active" || s == "activating" || s == "reloading", nil
}

// Place moves p, a process of uid, into uid's `work` leaf (`kept` when
// kept), starting the scope if it does not run.
func (d *SystemdGroups) PlaceScope(uid uint32, p platform.ProcID, kept bool) error {
	if err := d.check(uid); err != nil {
		return err
	}
	leaf := leafWork
	if kept {
		leaf = leafKept
	}
	ctx, cancel := d.ctx()
	defer cancel()
	var err error
	// Twice at most: the scope can be collected between the state read
	// and the attach (its last process exited); then it is started anew.
	for range 2 {
		var active bool
		if active, err = d.active(ctx, uid); err != nil {
			return err
		}
		if !active {
			err = d.start(ctx, uid, p)
			if err != nil && !isDBusError(err, "org.freedesktop.systemd1.UnitExists") {
				return err
			}
		}
		if err = d.attach(ctx, uid, p, leaf); err == nil {
			return nil
		}
		if active, err2 := d.active(ctx, uid); err2 != nil || active {
			return err
		}
	}
	return err
}

// checkProc re-reads p right before it is handed to systemd: the pid must
// still name the process the caller saw, running as uid.
func checkProc(uid uint32, p platform.ProcID) error {
	if p.PID <= 1 {
		return fmt.Errorf("systemd groups: pid %d refused", p.PID)
	}
	proc, err := readIdentity(p.PID)
	// A zombie has exited (systemd refuses it too); a leader that exited
	// while its threads run has not.
	zombie := err == nil && (proc.State == 'Z' || proc.State == 'X') && !proc.LeaderExited
	if errors.Is(err, platform.ErrGone) || (err == nil && proc.StartTime != p.StartTime) || zombie {
		return fmt.Errorf("systemd groups: process %s: %w (exited, or its pid names another process now)", p, platform.ErrGone)
	}
	if err != nil {
		return fmt.Errorf("systemd groups: process %s: %w", p, err)
	}
	if proc.UID != uid {
		return fmt.Errorf("systemd groups: process %s runs as uid %d, not %d: refused", p, proc.UID, uid)
	}
	return nil
}

// start starts uid's scope with p as its first process and the remembered
// limits, and waits for the job.
func (d *SystemdGroups) start(ctx context.Context, uid uint32, p platform.ProcID) error {
	d.mu.Lock()
	lim := d.limits[uid]
	d.mu.Unlock()
	if err := checkProc(uid, p); err != nil {
		return err
	}
	ch := make(chan string, 1)
	if _, err := d.conn.StartTransientUnitContext(ctx, ScopeName(uid), "fail", startProps(uid, p.PID, lim), ch); err != nil {
		return fmt.Errorf("systemd groups: starting %s: %w", ScopeName(uid), err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("systemd groups: starting %s: job %s", ScopeName(uid), res)
		}
	case <-ctx.Done():
		return fmt.Errorf("systemd groups: starting %s: %w", ScopeName(uid), ctx.Err())
	}
	return nil
}

// attach makes the leaves of uid's scope (if missing) and has systemd move
// p into leaf.
func (d *SystemdGroups) attach(ctx context.Context, uid uint32, p platform.ProcID, leaf string) error {
	dir, err := d.scopeDir(ctx, uid)
	if err != nil {
		return err
	}
	for _, l := range []string{leafWork, leafKept} {
		if err := os.Mkdir(filepath.Join(dir, l), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("systemd groups: %w", err)
		}
	}
	if err := checkProc(uid, p); err != nil {
		return err
	}
	if err := d.conn.AttachProcessesToUnit(ctx, ScopeName(uid), "/"+leaf, []uint32{uint32(p.PID)}); err != nil {
		return fmt.Errorf("systemd groups: moving %s into %s/%s: %w", p, ScopeName(uid), leaf, err)
	}
	// AttachProcessesToUnit takes a bare pid: if it was reused during
	// the call, say so rather than report a placement that did not happen.
	return checkProc(uid, p)
}

// scopeDir is the cgroup directory of uid's scope, from its ControlGroup.
func (d *SystemdGroups) scopeDir(ctx context.Context, uid uint32) (string, error) {
	p, err := d.conn.GetUnitTypePropertyContext(ctx, ScopeName(uid), "Scope", "ControlGroup")
	if err != nil {
		return "", fmt.Errorf("systemd groups: ControlGroup of %s: %w", ScopeName(uid), err)
	}
	cg, _ := p.Value.Value().(string)
	dir, err := groupDir(d.root, cg, uid)
	if err != nil {
		return "", fmt.Errorf("systemd groups: %s: %w", ScopeName(uid), err)
	}
	return dir, nil
}

// groupDir joins a scope's ControlGroup to the cgroup2 mount, refusing a
// group that is not the scope's own (empty: the scope is not running).
func groupDir(root, controlGroup string, uid uint32) (string, error) {
	if controlGroup == "" {
		return "", errors.New("no control group: the scope does not run")
	}
	clean := filepath.Clean("/" + controlGroup)
	if clean != controlGroup || filepath.Base(clean) != ScopeName(uid) {
		return "", fmt.Errorf("control group %q is not the scope's own", controlGroup)
	}
	return filepath.Join(root, clean), nil
}

// LeafDir is the directory of a leaf of uid's scope under root, given the
// scope's ControlGroup.
func LeafDir(root, controlGroup string, uid uint32, kept bool) (string, error) {
	dir, err := groupDir(root, controlGroup, uid)
	if err != nil {
		return "", err
	}
	if kept {
		return filepath.Join(dir, leafKept), nil
	}
	return filepath.Join(dir, leafWork), nil
}

// leaf returns the directory of uid's leaf, failing when the scope does
// not run.
func (d *SystemdGroups) leaf(uid uint32, name string) (string, error) {
	if err := d.check(uid); err != nil {
		return "", err
	}
	ctx, cancel := d.ctx()
	defer cancel()
	dir, err := d.scopeDir(ctx, uid)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// Freeze freezes uid's `work` leaf and waits until the kernel says it is
// frozen.
func (d *SystemdGroups) Freeze(uid uint32) error { return d.freeze(uid, true) }

// Thaw thaws uid's `work` leaf and waits until it runs again.
func (d *SystemdGroups) Thaw(uid uint32) error { return d.freeze(uid, false) }

func (d *SystemdGroups) freeze(uid uint32, on bool) error {
	dir, err := d.leaf(uid, leafWork)
	if err != nil {
		return err
	}
	v, want := "0", "frozen 0"
	if on {
		v, want = "1", "frozen 1"
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte(v), 0); err != nil {
		return fmt.Errorf("systemd groups: %w", err)
	}
	return waitEvents(filepath.Join(dir, "cgroup.events"), want, d.wait)
}

// Kill SIGKILLs every process of uid's `work` leaf at once (cgroup.kill:
// the kernel walks the group, so a fork cannot outrun it) and waits until
// the leaf is empty; `kept` is untouched.
func (d *SystemdGroups) KillWork(uid uint32) error {
	dir, err := d.leaf(uid, leafWork)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		return fmt.Errorf("systemd groups: %w", err)
	}
	err = waitEvents(filepath.Join(dir, "cgroup.events"), "populated 0", d.wait)
	if errors.Is(err, unix.ENODEV) || errors.Is(err, os.ErrNotExist) {
		// The leaf emptied and systemd collected the scope before we
		// read: gone is empty (seen under the real unit).
		return nil
	}
	return err
}

// waitEvents waits until the cgroup.events file at path has the line want
// ("frozen 1", "populated 0"), woken by inotify: the kernel notifies the
// file when a value changes (cgroup-v2.rst, "cgroup.events").
func waitEvents(path, want string, bound time.Duration) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("systemd groups: inotify: %w", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
		return fmt.Errorf("systemd groups: watching %s: %w", path, err)
	}
	end := time.Now().Add(bound)
	buf := make([]byte, 4096)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("systemd groups: %w", err)
		}
		if hasLine(string(b), want) {
			return nil
		}
		left := time.Until(end)
		if left <= 0 {
			return fmt.Errorf("systemd groups: %s: no %q within %s: %s", path, want, bound, strings.Join(strings.Fields(string(b)), " "))
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("systemd groups: poll: %w", err)
		}
		for {
			if n, err := unix.Read(fd, buf); n <= 0 || err != nil {
				break
			}
		}
	}
}

func hasLine(text, want string) bool {
	for line := range strings.Lines(text) {
		if strings.TrimSpace(line) == want {
			return true
		}
	}
	return false
}

// Members lists the pids (in guardd's pid namespace) of uid's leaves;
// none when its scope does not run.
func (d *SystemdGroups) Members(uid uint32) (work, kept []int32, err error) {
	if err := d.check(uid); err != nil {
		return nil, nil, err
	}
	ctx, cancel := d.ctx()
	defer cancel()
	active, err := d.active(ctx, uid)
	if err != nil || !active {
		return nil, nil, err
	}
	dir, err := d.scopeDir(ctx, uid)
	if err != nil {
		return nil, nil, err
	}
	if work, err = readProcs(filepath.Join(dir, leafWork, "cgroup.procs")); err != nil {
		return nil, nil, err
	}
	if kept, err = readProcs(filepath.Join(dir, leafKept, "cgroup.procs")); err != nil {
		return nil, nil, err
	}
	return work, kept, nil
}

// readProcs parses a cgroup.procs file; a missing leaf has no members
// (the scope was collected, or started but not yet given its leaves).
func readProcs(path string) ([]int32, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("systemd groups: %w", err)
	}
	return parseProcs(b)
}

func parseProcs(b []byte) ([]int32, error) {
	var pids []int32
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.ParseInt(f, 10, 32)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("systemd groups: bad pid %q in cgroup.procs", f)
		}
		pids = append(pids, int32(n))
	}
	return pids, nil
}

// Remove forgets uid's limits and stops its scope, which must be empty: a
// customer's processes are never killed by a Remove.
func (d *SystemdGroups) Remove(uid uint32) error {
	work, kept, err := d.Members(uid)
	if err != nil {
		return err
	}
	if len(work)+len(kept) > 0 {
		return fmt.Errorf("systemd groups: %s still has %d processes: not removed", ScopeName(uid), len(work)+len(kept))
	}
	d.mu.Lock()
	delete(d.limits, uid)
	d.mu.Unlock()
	ctx, cancel := d.ctx()
	defer cancel()
	if active, err := d.active(ctx, uid); err != nil || !active {
		return err
	}
	// Processes in the scope's own group (between a start and its
	// attach) keep it: systemd would kill them on stop.
	dir, err := d.scopeDir(ctx, uid)
	if err != nil {
		return err
	}
	if own, err := readProcs(filepath.Join(dir, "cgroup.procs")); err != nil || len(own) > 0 {
		if err != nil {
			return err
		}
		return fmt.Errorf("systemd groups: %s is being filled: not removed", ScopeName(uid))
	}
	ch := make(chan string, 1)
	if _, err := d.conn.StopUnitContext(ctx, ScopeName(uid), "fail", ch); err != nil {
		if isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
			return nil
		}
		return fmt.Errorf("systemd groups: stopping %s: %w", ScopeName(uid), err)
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("systemd groups: stopping %s: %w", ScopeName(uid), ctx.Err())
	}
}

// Close closes the connection to systemd; the scopes stay.
func (d *SystemdGroups) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		d.conn.Close()
	}
	return nil
}

func isDBusError(err error, name string) bool {
	var e godbus.Error
	if errors.As(err, &e) {
		return e.Name == name
	}
	var pe *godbus.Error
	return errors.As(err, &pe) && pe.Name == name
}
