package platform

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DiscoverCgroups reads guardd's cgroup layout from /proc/self/mountinfo,
// /proc/self/cgroup and the cgroup.controllers of its own v2 group.
func DiscoverCgroups() (*CgroupLayout, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	return ParseCgroupLayout(mi, cg, func(dir string) ([]byte, error) {
		return os.ReadFile(dir + "/cgroup.controllers")
	})
}

// ReadGroupStats reads the counters of group, a path relative to
// guardd's own group of each hierarchy ("guardd-users/u1000"); leaves as
// GroupStatsReader.Leaves. Use a GroupStatsReader where it runs often.
func ReadGroupStats(l *CgroupLayout, group string, leaves ...string) (GroupStats, error) {
	r := GroupStatsReader{Leaves: leaves}
	var s GroupStats
	err := r.Read(l, group, &s)
	return s, err
}

// Read fills s with the counters of group (see ReadGroupStats). A file
// the hierarchy or the kernel lacks leaves its fields unavailable
// (s.Has); an error means the group was not found in any hierarchy, or a
// file could not be read.
func (r *GroupStatsReader) Read(l *CgroupLayout, group string, s *GroupStats) error {
	*s = GroupStats{}
	if r.buf == nil {
		r.buf = make([]byte, 4096)
		r.path = make([]byte, 0, 256)
	}
	files := v2StatFiles
	if l.Mode == CgroupV1 {
		files = v1StatFiles
	}
	found := false
	for i := range files {
		f := &files[i]
		if r.Only != 0 && f.bits&r.Only == 0 {
			continue
		}
		h := l.V2
		if f.ctrl != "" {
			h = l.V1[f.ctrl]
		}
		if h == nil {
			continue
		}
		b, err := r.file(h, group, "", f.name)
		switch {
		case errors.Is(err, unix.ENOENT):
			continue // no such controller here, or no PSI
		case err != nil:
			return fmt.Errorf("read %s: %w", r.pathString(), err)
		}
		found = true
		f.parse(b, s)
	}
	if !found {
		return fmt.Errorf("cgroup group %q: %w", group, os.ErrNotExist)
	}
	if l.Mode == CgroupV1 {
		// v1 counts an OOM kill in the victim's own group and a refused
		// fork in the forking process's (seen on 6.18), v2 in each
		// ancestor too: add the leaves'.
		for _, leaf := range r.Leaves {
			for i := range v1LeafFiles {
				f := &v1LeafFiles[i]
				if r.Only != 0 && f.bits&r.Only == 0 {
					continue
				}
				h := l.V1[f.ctrl]
				if h == nil {
					continue
				}
				b, err := r.file(h, group, leaf, f.name)
				if err != nil {
					continue // a leaf that is not there had none
				}
				ls := &r.leaf // not a local: through f.parse it would escape
				*ls = GroupStats{}
				f.parse(b, ls)
				s.MemoryOOMKill += ls.MemoryOOMKill
				s.PidsRefused += ls.PidsRefused
			}
		}
	}
	return nil
}

// statFile is one counter file: in the v1 hierarchy of ctrl ("": v2),
// giving the Stat* bits of bits.
type statFile struct {
	ctrl, name string
	bits       uint32
	parse      func(b []byte, s *GroupStats)
}

var v1StatFiles = []statFile{
	{"cpuacct", "cpuacct.usage", StatCPUUsage, func(b []byte, s *GroupStats) {
		if v, ok := parseUint(bytes.TrimSpace(b)); ok {
			s.CPUUsageUsec, s.Avail = v/1000, s.Avail|StatCPUUsage // ns
		}
	}},
	{"cpu", "cpu.stat", StatCPUThrottled, ParseCPUStat},
	{"memory", "memory.usage_in_bytes", StatMemoryCurrent, setMemoryCurrent},
	{"memory", "memory.failcnt", StatMemoryMax, func(b []byte, s *GroupStats) {
		if v, ok := parseUint(bytes.TrimSpace(b)); ok {
			s.MemoryMax, s.Avail = v, s.Avail|StatMemoryMax
		}
	}},
	{"memory", "memory.oom_control", StatMemoryOOMKill, ParseOOMControl},
	{"pids", "pids.current", StatPidsCurrent, setPidsCurrent},
	{"pids", "pids.events", StatPidsRefused, ParsePidsEvents},
	{"blkio", "blkio.throttle.io_service_bytes", StatIO, ParseBlkioBytes},
}

var v1LeafFiles = []statFile{{"memory", "memory.oom_control", StatMemoryOOMKill, ParseOOMControl}, {"pids", "pids.events", StatPidsRefused, ParsePidsEvents}}

var v2StatFiles = []statFile{
	{"", "cpu.stat", StatCPUUsage | StatCPUThrottled, ParseCPUStat},
	{"", "memory.current", StatMemoryCurrent, setMemoryCurrent},
	{"", "memory.events", StatMemoryHigh | StatMemoryMax | StatMemoryOOM | StatMemoryOOMKill, ParseMemoryEvents},
	{"", "pids.current", StatPidsCurrent, setPidsCurrent},
	{"", "pids.events", StatPidsRefused, ParsePidsEvents},
	{"", "io.stat", StatIO, ParseIOStat},
	{"", "cpu.pressure", StatCPUPressure, func(b []byte, s *GroupStats) {
		if v, ok := ParsePressureSome(b); ok {
			s.CPUPressure, s.Avail = v, s.Avail|StatCPUPressure
		}
	}},
	{"", "memory.pressure", StatMemoryPressure, func(b []byte, s *GroupStats) {
		if v, ok := ParsePressureSome(b); ok {
			s.MemoryPressure, s.Avail = v, s.Avail|StatMemoryPressure
		}
	}},
	{"", "io.pressure", StatIOPressure, func(b []byte, s *GroupStats) {
		if v, ok := ParsePressureSome(b); ok {
			s.IOPressure, s.Avail = v, s.Avail|StatIOPressure
		}
		if v, ok := ParsePressureFullTotal(b); ok {
			s.IOFullStallUsec = v
		}
	}},
}

func setMemoryCurrent(b []byte, s *GroupStats) {
	if v, ok := parseUint(bytes.TrimSpace(b)); ok {
		s.MemoryCurrent, s.Avail = v, s.Avail|StatMemoryCurrent
	}
}

func setPidsCurrent(b []byte, s *GroupStats) {
	if v, ok := parseUint(bytes.TrimSpace(b)); ok {
		s.PidsCurrent, s.Avail = v, s.Avail|StatPidsCurrent
	}
}

// open opens h's group/sub/name. The path is built in r.path and opened
// with a raw openat: unix.Open would allocate a copy of it.
func (r *GroupStatsReader) open(h *CgroupHierarchy, group, sub, name string) (int, error) {
	p := append(r.path[:0], h.Mount...)
	if rel := trimRoot(h.Own, h.Root); rel != "" {
		p = append(p, '/')
		p = append(p, rel...)
	}
	for _, g := range [2]string{group, sub} {
		if g != "" {
			p = append(p, '/')
			p = append(p, g...)
		}
	}
	p = append(p, '/')
	p = append(p, name...)
	p = append(p, 0)
	r.path = p
	atFDCWD := unix.AT_FDCWD // a variable: the constant is negative
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&p[0])),
		uintptr(unix.O_RDONLY|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// file reads the whole of h's group/sub/name into r.buf, with one open
// and as few reads as the file needs.
func (r *GroupStatsReader) file(h *CgroupHierarchy, group, sub, name string) ([]byte, error) {
	fd, err := r.open(h, group, sub, name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(r.buf) {
			if len(r.buf) >= 1<<20 {
				return nil, fmt.Errorf("larger than %d bytes", len(r.buf))
			}
			r.buf = slices.Grow(r.buf, len(r.buf))[:2*len(r.buf)]
		}
		m, err := unix.Read(fd, r.buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return r.buf[:n], nil
		}
		n += m
	}
}

// pathString is the last path file built, for an error.
func (r *GroupStatsReader) pathString() string {
	return string(bytes.TrimSuffix(r.path, []byte{0}))
}

// trimRoot is own relative to the mount's root, without slashes around.
func trimRoot(own, root string) string {
	rel := own
	if root != "/" {
		rel = own[min(len(root), len(own)):]
	}
	for len(rel) > 0 && rel[0] == '/' {
		rel = rel[1:]
	}
	for len(rel) > 0 && rel[len(rel)-1] == '/' {
		rel = rel[:len(rel)-1]
	}
	return rel
}

// ProcCgroupPath is the group pid is in, as /proc/PID/cgroup shows it, in
// the layout's placement hierarchy (l.Placement: v2, else v1 pids).
// Compare it with CgroupHierarchy.Rel. ErrGone when the process exited.
func ProcCgroupPath(pid int32, l *CgroupLayout) (string, error) {
	h := l.Placement()
	if h == nil {
		return "", fmt.Errorf("cgroups: no hierarchy to place processes in (mode %s)", l.Mode)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/cgroup")
	if err != nil {
		return "", goneOr(err, "read cgroup of "+strconv.Itoa(int(pid)))
	}
	return ProcCgroupIn(b, h)
}

// GroupStatsFiles keeps one group's counter files open: a read is then
// one pread per file (about 0.5 µs each here, against 6 µs for an open,
// a read and a close), for a tick that reads every customer's group.
// Each open file is a descriptor held: open only the fields needed
// (only), and Close before the group is removed (a read of a removed
// group's file fails with ENODEV). Not safe for concurrent use.
type GroupStatsFiles struct {
	fds   []int
	files []*statFile
	leaf  []bool // the file is a leaf's: its counts are added (see GroupStatsReader.Leaves)
	buf   []byte
	tmp   GroupStats
}

// OpenGroupStats opens the counter files of group (as ReadGroupStats
// takes it) that give the Stat* bits of only (0: all); files this host
// lacks are left out, their fields unavailable.
func OpenGroupStats(l *CgroupLayout, group string, only uint32, leaves ...string) (*GroupStatsFiles, error) {
	g := &GroupStatsFiles{buf: make([]byte, 4096)}
	var r GroupStatsReader
	r.path = make([]byte, 0, 256)
	add := func(f *statFile, sub string, leaf bool) error {
		if only != 0 && f.bits&only == 0 {
			return nil
		}
		h := l.V2
		if f.ctrl != "" {
			h = l.V1[f.ctrl]
		}
		if h == nil {
			return nil
		}
		fd, err := r.open(h, group, sub, f.name)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", r.pathString(), err)
		}
		g.fds, g.files, g.leaf = append(g.fds, fd), append(g.files, f), append(g.leaf, leaf)
		return nil
	}
	files := v2StatFiles
	if l.Mode == CgroupV1 {
		files = v1StatFiles
	}
	var err error
	for i := range files {
		if err = add(&files[i], "", false); err != nil {
			break
		}
	}
	for _, leaf := range leaves {
		for i := range v1LeafFiles {
			if err == nil && l.Mode == CgroupV1 {
				err = add(&v1LeafFiles[i], leaf, true)
			}
		}
	}
	if err == nil && len(g.fds) == 0 {
		err = fmt.Errorf("cgroup group %q: %w", group, os.ErrNotExist)
	}
	if err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Read fills s from the open files.
func (g *GroupStatsFiles) Read(s *GroupStats) error {
	*s = GroupStats{}
	for i, fd := range g.fds {
		n := 0
		for {
			if n == len(g.buf) {
				if len(g.buf) >= 1<<20 {
					return fmt.Errorf("read %s: larger than %d bytes", g.files[i].name, len(g.buf))
				}
				g.buf = slices.Grow(g.buf, len(g.buf))[:2*len(g.buf)]
			}
			m, err := unix.Pread(fd, g.buf[n:], int64(n))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", g.files[i].name, err)
			}
			if m == 0 {
				break
			}
			n += m
		}
		if !g.leaf[i] {
			g.files[i].parse(g.buf[:n], s)
			continue
		}
		g.tmp = GroupStats{}
		g.files[i].parse(g.buf[:n], &g.tmp)
		s.MemoryOOMKill += g.tmp.MemoryOOMKill
		s.PidsRefused += g.tmp.PidsRefused
	}
	return nil
}

// Close closes the files.
func (g *GroupStatsFiles) Close() error {
	for _, fd := range g.fds {
		unix.Close(fd)
	}
	g.fds = nil
	return nil
}
