package platform

import (
	"bytes"
	"fmt"
)

// Sockstat is the kernel's socket accounting, from /proc/net/sockstat and
// /proc/net/sockstat6 (net/ipv4/proc.c sockstat_seq_show). Memory figures
// are in pages, as the kernel counts them against net.ipv4.tcp_mem.
type Sockstat struct {
	SocketsUsed  uint64 // "sockets: used": sockets of every family in use
	TCPInUse     uint64 // IPv4 TCP sockets in use (listening included)
	TCPOrphan    uint64 // TCP sockets no longer attached to a descriptor
	TCPTimeWait  uint64 // TCP sockets in TIME-WAIT
	TCPAlloc     uint64 // TCP sockets allocated (all states, IPv4 and IPv6)
	TCPMemPages  uint64 // pages of socket buffers TCP uses
	UDPInUse     uint64
	UDPMemPages  uint64
	TCP6InUse    uint64
	UDP6InUse    uint64
	RawInUse     uint64
	FragInUse    uint64
	FragMemBytes uint64 // "FRAG: memory" is in bytes, unlike the others
}

// ParseSockstat parses /proc/net/sockstat or sockstat6 (or both joined)
// into s, adding what it finds: "PROTO: key value key value ...". Unknown
// protocols and keys are ignored, so newer kernels parse; a line that is
// not key-value pairs is an error.
func ParseSockstat(b []byte, s *Sockstat) error {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		proto, rest, ok := bytes.Cut(line, []byte(":"))
		f := bytes.Fields(rest)
		if !ok || len(f)%2 != 0 || len(f) == 0 {
			return fmt.Errorf("sockstat: bad line %q", truncate(line))
		}
		for i := 0; i < len(f); i += 2 {
			v, ok := parseUint(f[i+1])
			if !ok {
				return fmt.Errorf("sockstat: bad value %q", truncate(f[i+1]))
			}
			if p := sockstatField(s, string(bytes.TrimSpace(proto)), string(f[i])); p != nil {
				*p = v
			}
		}
	}
	return nil
}

func sockstatField(s *Sockstat, proto, key string) *uint64 {
	switch proto + " " + key {
	case "sockets used":
		return &s.SocketsUsed
	case "TCP inuse":
		return &s.TCPInUse
	case "TCP orphan":
		return &s.TCPOrphan
	case "TCP tw":
		return &s.TCPTimeWait
	case "TCP alloc":
		return &s.TCPAlloc
	case "TCP mem":
		return &s.TCPMemPages
	case "UDP inuse":
		return &s.UDPInUse
	case "UDP mem":
		return &s.UDPMemPages
	case "TCP6 inuse":
		return &s.TCP6InUse
	case "UDP6 inuse":
		return &s.UDP6InUse
	case "RAW inuse":
		return &s.RawInUse
	case "FRAG inuse":
		return &s.FragInUse
	case "FRAG memory":
		return &s.FragMemBytes
	}
	return nil
}

// TCPMem is net.ipv4.tcp_mem (/proc/sys/net/ipv4/tcp_mem): the limits, in
// pages, of the memory all TCP sockets together may use for buffers.
type TCPMem struct {
	Low, Pressure, High uint64 // below Low no pressure; above High allocations fail
}

// ParseTCPMem parses "LOW\tPRESSURE\tHIGH".
func ParseTCPMem(b []byte) (TCPMem, error) {
	f := bytes.Fields(b)
	if len(f) != 3 {
		return TCPMem{}, fmt.Errorf("tcp_mem: %d fields, want 3", len(f))
	}
	var v [3]uint64
	for i := range v {
		n, ok := parseUint(f[i])
		if !ok {
			return TCPMem{}, fmt.Errorf("tcp_mem: bad field %q", truncate(f[i]))
		}
		v[i] = n
	}
	if v[0] > v[1] || v[1] > v[2] {
		return TCPMem{}, fmt.Errorf("tcp_mem: limits out of order: %d %d %d", v[0], v[1], v[2])
	}
	return TCPMem{v[0], v[1], v[2]}, nil
}

// BufferPercent is TCP socket buffer use against tcp_mem's upper limit
// (where the kernel starts refusing buffer memory); 0 without a limit.
func (s Sockstat) BufferPercent(m TCPMem) float64 {
	if m.High == 0 {
		return 0
	}
	return float64(s.TCPMemPages) / float64(m.High) * 100
}
