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
		// v1 counts an OOM kill and a refused fork in the group of the
		// process it happened to (pids.events since 6.12, "pids:
		// separate semantics"), v2 in each ancestor too: add the leaves'.
		for _, leaf := range r.Leaves {
			for _, f := range [...]statFile{{"memory", "memory.oom_control", ParseOOMControl}, {"pids", "pids.events", ParsePidsEvents}} {
				h := l.V1[f.ctrl]
				if h == nil {
					continue
				}
				b, err := r.file(h, group, leaf, f.name)
				if err != nil {
					continue // a leaf that is not there had none
				}
				var ls GroupStats
				f.parse(b, &ls)
				s.MemoryOOMKill += ls.MemoryOOMKill
				s.PidsRefused += ls.PidsRefused
			}
		}
	}
	return nil
}

// statFile is one counter file: in the v1 hierarchy of ctrl ("": v2).
type statFile struct {
	ctrl, name string
	parse      func(b []byte, s *GroupStats)
}

var v1StatFiles = []statFile{
	{"cpuacct", "cpuacct.usage", func(b []byte, s *GroupStats) {
		if v, ok := parseUint(bytes.TrimSpace(b)); ok {
			s.CPUUsageUsec, s.Avail = v/1000, s.Avail|StatCPUUsage // ns
		}
	}},
	{"cpu", "cpu.stat", ParseCPUStat},
	{"memory", "memory.usage_in_bytes", setMemoryCurrent},
	{"memory", "memory.failcnt", func(b []byte, s *GroupStats) {
		if v, ok := parseUint(bytes.TrimSpace(b)); ok {
			s.MemoryMax, s.Avail = v, s.Avail|StatMemoryMax
		}
	}},
	{"memory", "memory.oom_control", ParseOOMControl},
	{"pids", "pids.current", setPidsCurrent},
	{"pids", "pids.events", ParsePidsEvents},
	{"blkio", "blkio.throttle.io_service_bytes", ParseBlkioBytes},
}

var v2StatFiles = []statFile{
	{"", "cpu.stat", ParseCPUStat},
	{"", "memory.current", setMemoryCurrent},
	{"", "memory.events", ParseMemoryEvents},
	{"", "pids.current", setPidsCurrent},
	{"", "pids.events", ParsePidsEvents},
	{"", "io.stat", ParseIOStat},
	{"", "cpu.pressure", func(b []byte, s *GroupStats) {
		if v, ok := ParsePressureSome(b); ok {
			s.CPUPressure, s.Avail = v, s.Avail|StatCPUPressure
		}
	}},
	{"", "memory.pressure", func(b []byte, s *GroupStats) {
		if v, ok := ParsePressureSome(b); ok {
			s.MemoryPressure, s.Avail = v, s.Avail|StatMemoryPressure
		}
	}},
	{"", "io.pressure", func(b []byte, s *GroupStats) {
		if v, ok := ParsePressureSome(b); ok {
			s.IOPressure, s.Avail = v, s.Avail|StatIOPressure
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

// file reads the whole of h's group/name into r.buf, with one open and
// as few reads as the file needs. The path is built in r.path and opened
// with a raw openat: unix.Open would allocate a copy of it.
func (r *GroupStatsReader) file(h *CgroupHierarchy, group, sub, name string) ([]byte, error) {
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
		return nil, e
	}
	defer unix.Close(int(fd))
	n := 0
	for {
		if n == len(r.buf) {
			if len(r.buf) >= 1<<20 {
				return nil, fmt.Errorf("larger than %d bytes", len(r.buf))
			}
			r.buf = slices.Grow(r.buf, len(r.buf))[:2*len(r.buf)]
		}
		m, err := unix.Read(int(fd), r.buf[n:])
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
