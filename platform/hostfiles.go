package platform

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// LoadAvg is /proc/loadavg.
type LoadAvg struct {
	Load1, Load5, Load15 float64
}

// ParseLoadAvg parses "0.52 0.58 0.59 2/345 6789".
func ParseLoadAvg(b []byte) (LoadAvg, error) {
	f := bytes.Fields(b)
	if len(f) < 3 {
		return LoadAvg{}, fmt.Errorf("loadavg: %d fields, want >= 3", len(f))
	}
	var l [3]float64
	for i := range l {
		v, err := strconv.ParseFloat(string(f[i]), 64)
		// !(v >= 0) also rejects NaN, which ParseFloat accepts and which
		// would compare false with every policy threshold.
		if err != nil || !(v >= 0) || math.IsInf(v, 0) {
			return LoadAvg{}, fmt.Errorf("loadavg: bad field %q", truncate(f[i]))
		}
		l[i] = v
	}
	return LoadAvg{l[0], l[1], l[2]}, nil
}

// FileNr is /proc/sys/fs/file-nr: the system-wide file table.
type FileNr struct {
	Allocated uint64 // file handles allocated
	Free      uint64 // allocated but unused (always 0 since Linux 2.6)
	Max       uint64 // fs.file-max
}

// ParseFileNr parses "1216\t0\t9223372036854775807".
func ParseFileNr(b []byte) (FileNr, error) {
	f := bytes.Fields(b)
	if len(f) != 3 {
		return FileNr{}, fmt.Errorf("file-nr: %d fields, want 3", len(f))
	}
	var v [3]uint64
	for i := range v {
		n, ok := parseUint(f[i])
		if !ok {
			return FileNr{}, fmt.Errorf("file-nr: bad field %q", truncate(f[i]))
		}
		v[i] = n
	}
	return FileNr{v[0], v[1], v[2]}, nil
}

// OpenPercent is the share of the file table in use.
func (f FileNr) OpenPercent() float64 {
	if f.Max == 0 {
		return 0
	}
	used := f.Allocated - min(f.Free, f.Allocated)
	return float64(used) / float64(f.Max) * 100
}

// ParseCPUList counts the CPUs in a list such as "0-3,8,10-11"
// (/sys/devices/system/cpu/online).
func ParseCPUList(b []byte) (int, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, fmt.Errorf("cpu list: empty")
	}
	n := 0
	for _, part := range bytes.Split(b, []byte(",")) {
		lo, hi := part, part
		if i := bytes.IndexByte(part, '-'); i >= 0 {
			lo, hi = part[:i], part[i+1:]
		}
		a, ok1 := parseUint(lo)
		z, ok2 := parseUint(hi)
		if !ok1 || !ok2 || z < a || z-a > 1<<20 {
			return 0, fmt.Errorf("cpu list: bad range %q", truncate(part))
		}
		n += int(z-a) + 1
	}
	return n, nil
}
