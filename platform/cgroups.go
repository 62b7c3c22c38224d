package platform

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Cgroup modes (CgroupLayout.Mode).
const (
	CgroupV2   = "v2"   // unified: the controllers guardd uses are on the cgroup2 mount
	CgroupV1   = "v1"   // legacy or hybrid: they are on v1 mounts (a cgroup2 mount may exist, without them)
	CgroupNone = "none" // neither: no per-customer groups here
)

// CgroupControllers are the controllers guardd's groups use. cpu and
// cpuacct are one controller on v2 ("cpu") and often one v1 mount.
var CgroupControllers = []string{"cpu", "cpuacct", "memory", "pids", "blkio", "freezer", "io"}

// CgroupHierarchy is one cgroup hierarchy and guardd's own group in it.
type CgroupHierarchy struct {
	Version int    // 1 or 2
	Mount   string // mount point, e.g. /sys/fs/cgroup/pids
	// Root is the group mounted there, in the hierarchy's path as
	// /proc/PID/cgroup shows it ("/" unless a container or a bind mount
	// shows a subtree).
	Root string
	// Own is guardd's own group as /proc/self/cgroup says ("/" in a
	// cgroup namespace whose root it is in).
	Own string
	// Controllers: v1, those of the mount (sorted); v2, those listed in
	// the own group's cgroup.controllers (what may be enabled below it).
	Controllers []string
}

// Dir is the directory of guardd's own group.
func (h *CgroupHierarchy) Dir() string { return h.Path(h.Own) }

// Path is the directory of a group given as /proc/PID/cgroup shows it.
// The group must lie under Root (Rel and ParseCgroupLayout check that).
func (h *CgroupHierarchy) Path(group string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(group, h.Root), "/")
	if rel == "" {
		return h.Mount
	}
	return strings.TrimSuffix(h.Mount, "/") + "/" + rel
}

// Rel is group (as /proc/PID/cgroup shows it) relative to guardd's own
// group: "" for the own group itself, "guardd-users/u1000/work" below it;
// ok is false when group is not inside the own group.
func (h *CgroupHierarchy) Rel(group string) (rel string, ok bool) {
	if group == h.Own {
		return "", true
	}
	prefix := strings.TrimSuffix(h.Own, "/") + "/"
	if !strings.HasPrefix(group, prefix) {
		return "", false
	}
	return group[len(prefix):], true
}

// Has reports whether the hierarchy has controller c.
func (h *CgroupHierarchy) Has(c string) bool { return h != nil && slices.Contains(h.Controllers, c) }

// CgroupLayout is how cgroups are laid out for guardd's own process.
type CgroupLayout struct {
	Mode string           // CgroupV2, CgroupV1 or CgroupNone
	V2   *CgroupHierarchy // the cgroup2 mount; nil when none
	// V1 holds the v1 hierarchies of interest by controller name (cpu,
	// cpuacct, memory, pids, blkio, freezer); co-mounted controllers
	// share one *CgroupHierarchy.
	V1 map[string]*CgroupHierarchy
}

// V1Hierarchies are the distinct v1 hierarchies of interest, in the
// order of CgroupControllers.
func (l *CgroupLayout) V1Hierarchies() []*CgroupHierarchy {
	var out []*CgroupHierarchy
	for _, c := range CgroupControllers {
		if h := l.V1[c]; h != nil && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// Placement is the hierarchy whose membership says which group a
// process is in: the cgroup2 one in v2 mode, else the v1 pids one (the
// freezer, cpu or memory one when pids is missing), else the cgroup2
// mount if any. Nil when there is none.
func (l *CgroupLayout) Placement() *CgroupHierarchy {
	if l.Mode == CgroupV1 {
		for _, c := range []string{"pids", "freezer", "cpu", "memory", "cpuacct", "blkio"} {
			if h := l.V1[c]; h != nil {
				return h
			}
		}
	}
	return l.V2
}

// ProcCgroup is one line of /proc/PID/cgroup: "ID:CONTROLLERS:PATH".
type ProcCgroup struct {
	ID          int
	Controllers []string // v1: the hierarchy's controllers (and name=...); v2 (ID 0): none
	Path        string
}

// ParseProcCgroup parses /proc/PID/cgroup (cgroups(7)). The path is the
// rest of the line after the second colon: a group's name may hold ':'.
func ParseProcCgroup(b []byte) ([]ProcCgroup, error) {
	var out []ProcCgroup
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		id, rest, ok1 := bytes.Cut(line, []byte{':'})
		ctrl, path, ok2 := bytes.Cut(rest, []byte{':'})
		n, ok3 := parseUint(id)
		if !ok1 || !ok2 || !ok3 || n > 1<<20 || len(path) == 0 || path[0] != '/' {
			return nil, fmt.Errorf("cgroup: bad line %q", truncate(line))
		}
		pc := ProcCgroup{ID: int(n), Path: string(path)}
		if len(ctrl) > 0 {
			pc.Controllers = strings.Split(string(ctrl), ",")
		}
		out = append(out, pc)
	}
	return out, nil
}

// ParseCgroupLayout builds the layout from /proc/self/mountinfo and
// /proc/self/cgroup. controllers reads the cgroup.controllers file of a
// v2 directory (nil: none are known). A hierarchy whose mount does not
// show guardd's own group (a container that mounts only a sibling
// subtree) is left out: guardd creates groups only under its own.
func ParseCgroupLayout(mountinfo, cgroup []byte, controllers func(dir string) ([]byte, error)) (*CgroupLayout, error) {
	entries, err := ParseProcCgroup(cgroup)
	if err != nil {
		return nil, err
	}
	mounts, _ := ParseMountInfo(mountinfo)
	l := &CgroupLayout{Mode: CgroupNone, V1: map[string]*CgroupHierarchy{}}
	for _, e := range entries {
		if e.ID == 0 {
			if m := cgroupMount(mounts, "cgroup2", nil, e.Path); m != nil {
				l.V2 = &CgroupHierarchy{Version: 2, Mount: m.Point, Root: m.Root, Own: e.Path}
			}
			continue
		}
		var want []string
		for _, c := range e.Controllers {
			if slices.Contains(CgroupControllers, c) {
				want = append(want, c)
			}
		}
		if len(want) == 0 {
			continue // name=systemd, cpuset, devices, ...: not guardd's
		}
		m := cgroupMount(mounts, "cgroup", want, e.Path)
		if m == nil {
			continue
		}
		slices.Sort(want)
		h := &CgroupHierarchy{Version: 1, Mount: m.Point, Root: m.Root, Own: e.Path, Controllers: want}
		for _, c := range want {
			l.V1[c] = h
		}
	}
	if l.V2 != nil && controllers != nil {
		if b, err := controllers(l.V2.Dir()); err == nil {
			l.V2.Controllers = strings.Fields(string(b))
			slices.Sort(l.V2.Controllers)
		}
	}
	switch {
	case len(l.V1) > 0:
		l.Mode = CgroupV1
	case l.V2 != nil && slices.ContainsFunc(l.V2.Controllers, func(c string) bool { return slices.Contains(CgroupControllers, c) }):
		l.Mode = CgroupV2
	}
	return l, nil
}

// cgroupMount finds a mount of type typ (with every controller of want
// among its super options, for v1) whose root holds path.
func cgroupMount(mounts []Mount, typ string, want []string, path string) *Mount {
	for i := range mounts {
		m := &mounts[i]
		if m.Type != typ || !under(path, m.Root) {
			continue
		}
		opts := strings.Split(m.SuperOptions, ",")
		if !slices.ContainsFunc(want, func(c string) bool { return !slices.Contains(opts, c) }) {
			return m
		}
	}
	return nil
}

// under reports whether path is root or below it.
func under(path, root string) bool {
	return root == "/" || path == root || strings.HasPrefix(path, strings.TrimSuffix(root, "/")+"/")
}

// Stat fields of GroupStats, for GroupStats.Has: a counter this
// hierarchy or kernel does not have is "not available", never 0.
const (
	StatCPUUsage = 1 << iota
	StatCPUThrottled
	StatMemoryCurrent
	StatMemoryHigh    // v2 only
	StatMemoryMax     // v2 memory.events max; v1 memory.failcnt
	StatMemoryOOM     // v2 only
	StatMemoryOOMKill // v2 memory.events; v1 memory.oom_control (kernels ≥ 4.13)
	StatPidsCurrent
	StatPidsRefused
	StatIO
	StatCPUPressure // v2 with PSI only
	StatMemoryPressure
	StatIOPressure
)

// GroupStats are one group's counters, cumulative since the group was
// created (except the current values and PSI).
type GroupStats struct {
	Avail uint32 // Stat* bits of the fields read

	CPUUsageUsec     uint64 // CPU time of the group's tasks, µs
	CPUThrottledUsec uint64 // time throttled by the CPU quota, µs
	CPUThrottled     uint64 // periods in which the group was throttled
	CPUPeriods       uint64 // enforcement periods elapsed with runnable tasks

	MemoryCurrent uint64 // bytes charged to the group (page cache included)
	MemoryHigh    uint64 // times over memory.high (reclaim forced)
	MemoryMax     uint64 // times at memory.max (v1: failcnt, charges refused at the limit)
	MemoryOOM     uint64 // times the group was out of memory
	MemoryOOMKill uint64 // processes killed by the OOM killer in the group

	PidsCurrent uint64 // processes and threads
	PidsRefused uint64 // forks refused at pids.max

	IOReadBytes, IOWriteBytes uint64 // summed over devices

	// PSI "some avg10": percent of the last 10 s in which some task of
	// the group was stalled on the resource.
	CPUPressure, MemoryPressure, IOPressure float64
	// IOFullStallUsec is PSI's io "full" total: time in which every
	// non-idle task of the group was stalled on IO, µs (read with
	// StatIOPressure).
	IOFullStallUsec uint64
}

// Has reports whether the field(s) of bit f were read.
func (s *GroupStats) Has(f uint32) bool { return s.Avail&f == f }

// keyed calls fn for each "KEY VALUE" line of b (cpu.stat, memory.events,
// pids.events, memory.oom_control) whose value is a decimal.
func keyed(b []byte, fn func(key []byte, v uint64)) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue
		}
		if n, ok := parseUint(bytes.TrimSpace(v)); ok {
			fn(k, n)
		}
	}
}

// ParseCPUStat reads a cpu.stat: v2 (usage_usec, throttled_usec,
// nr_throttled, nr_periods) or v1 (throttled_time in ns, nr_throttled,
// nr_periods; usage is cpuacct.usage's).
func ParseCPUStat(b []byte, s *GroupStats) {
	keyed(b, func(k []byte, v uint64) {
		switch string(k) {
		case "usage_usec":
			s.CPUUsageUsec, s.Avail = v, s.Avail|StatCPUUsage
		case "throttled_usec":
			s.CPUThrottledUsec, s.Avail = v, s.Avail|StatCPUThrottled
		case "throttled_time":
			s.CPUThrottledUsec, s.Avail = v/1000, s.Avail|StatCPUThrottled
		case "nr_throttled":
			s.CPUThrottled = v
		case "nr_periods":
			s.CPUPeriods = v
		}
	})
}

// ParseMemoryEvents reads a v2 memory.events.
func ParseMemoryEvents(b []byte, s *GroupStats) {
	keyed(b, func(k []byte, v uint64) {
		switch string(k) {
		case "high":
			s.MemoryHigh, s.Avail = v, s.Avail|StatMemoryHigh
		case "max":
			s.MemoryMax, s.Avail = v, s.Avail|StatMemoryMax
		case "oom":
			s.MemoryOOM, s.Avail = v, s.Avail|StatMemoryOOM
		case "oom_kill":
			s.MemoryOOMKill, s.Avail = v, s.Avail|StatMemoryOOMKill
		}
	})
}

// ParseOOMControl reads a v1 memory.oom_control's oom_kill.
func ParseOOMControl(b []byte, s *GroupStats) {
	keyed(b, func(k []byte, v uint64) {
		if string(k) == "oom_kill" {
			s.MemoryOOMKill, s.Avail = v, s.Avail|StatMemoryOOMKill
		}
	})
}

// ParsePidsEvents reads pids.events (v1 and v2): "max N".
func ParsePidsEvents(b []byte, s *GroupStats) {
	keyed(b, func(k []byte, v uint64) {
		if string(k) == "max" {
			s.PidsRefused, s.Avail = v, s.Avail|StatPidsRefused
		}
	})
}

// ParseIOStat sums rbytes and wbytes over the devices of a v2 io.stat
// ("8:0 rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N").
func ParseIOStat(b []byte, s *GroupStats) {
	s.Avail |= StatIO
	eachField(b, func(f []byte) {
		k, v, ok := bytes.Cut(f, []byte{'='})
		if !ok {
			return
		}
		n, ok := parseUint(v)
		switch {
		case !ok:
		case string(k) == "rbytes":
			s.IOReadBytes += n
		case string(k) == "wbytes":
			s.IOWriteBytes += n
		}
	})
}

// eachField calls fn for each run of non-space bytes of b (bytes.Fields
// without the slice it allocates).
func eachField(b []byte, fn func(f []byte)) {
	for len(b) > 0 {
		i := 0
		for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t') {
			i++
		}
		j := i
		for j < len(b) && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' {
			j++
		}
		if j > i {
			fn(b[i:j])
		}
		b = b[j:]
	}
}

// ParseBlkioBytes sums Read and Write over the devices of a v1
// blkio.throttle.io_service_bytes ("8:0 Read N", …, "Total N").
func ParseBlkioBytes(b []byte, s *GroupStats) {
	s.Avail |= StatIO
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		var f [3][]byte
		n := 0
		eachField(line, func(x []byte) {
			if n < len(f) {
				f[n] = x
			}
			n++
		})
		if n != 3 {
			continue
		}
		v, ok := parseUint(f[2])
		switch {
		case !ok:
		case string(f[1]) == "Read":
			s.IOReadBytes += v
		case string(f[1]) == "Write":
			s.IOWriteBytes += v
		}
	}
}

// ParsePressureSome returns the "some avg10" of a PSI file
// ("some avg10=1.23 avg60=… total=…").
func ParsePressureSome(b []byte) (float64, bool) {
	return parsePressureSome(b)
}

// ParsePressureFullTotal returns the total= of a PSI file's "full" line,
// µs; false when there is none (cpu.pressure before kernel 5.13).
func ParsePressureFullTotal(b []byte) (uint64, bool) {
	i := bytes.Index(b, []byte("full "))
	if i < 0 {
		return 0, false
	}
	line := b[i:]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	k := bytes.Index(line, []byte("total="))
	if k < 0 {
		return 0, false
	}
	var v uint64
	digits := 0
	for _, c := range line[k+len("total="):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + uint64(c-'0')
		digits++
	}
	if digits == 0 || digits > 19 {
		return 0, false
	}
	return v, true
}

func parsePressureSome(b []byte) (float64, bool) {
	rest, ok := bytes.CutPrefix(b, []byte("some "))
	if !ok {
		return 0, false
	}
	rest, ok = bytes.CutPrefix(rest, []byte("avg10="))
	if !ok {
		return 0, false
	}
	// A fixed-point decimal "N.NN": parsed by hand, strconv would
	// allocate a string.
	var v float64
	var scale float64
	digits := 0
	for _, c := range rest {
		switch {
		case c >= '0' && c <= '9':
			v = v*10 + float64(c-'0')
			scale *= 10
			digits++
		case c == '.' && scale == 0:
			scale = 1
		default:
			goto done
		}
	}
done:
	if digits == 0 || digits > 12 {
		return 0, false
	}
	if scale > 0 {
		v /= scale
	}
	return v, true
}

// GroupStatsReader reads GroupStats with reused buffers: it runs per
// user per tick and makes no garbage. Not safe for concurrent use.
type GroupStatsReader struct {
	// Leaves are child groups (e.g. "work", "kept") whose v1 OOM kills
	// and refused forks count for the group: v1 counts them only in the
	// group of the process they happened to, v2 in its ancestors too.
	Leaves []string
	// Only, when not 0, reads only the files that give these Stat* bits
	// (each file costs an open and a read: a tick that needs CPU, memory
	// and processes reads three, not twelve).
	Only uint32

	buf  []byte
	path []byte
	leaf GroupStats // a leaf's counters, before they are added
}

// ProcCgroupIn is the group of h in a /proc/PID/cgroup's content.
func ProcCgroupIn(b []byte, h *CgroupHierarchy) (string, error) {
	entries, err := ParseProcCgroup(b)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if h.Version == 2 && e.ID == 0 {
			return e.Path, nil
		}
		if h.Version == 1 && e.ID != 0 && len(h.Controllers) > 0 && slices.Contains(e.Controllers, h.Controllers[0]) {
			return e.Path, nil
		}
	}
	return "", fmt.Errorf("cgroups: no line for the %s hierarchy", h.Mount)
}
