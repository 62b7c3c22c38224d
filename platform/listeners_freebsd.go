//go:build freebsd

package platform

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// ListenerDumper lists the host's listening sockets from
// net.inet.tcp.pcblist and net.inet.udp.pcblist (IPv4 and IPv6 sockets
// alike: FreeBSD keeps both in one table per protocol), and
// net.inet.udplite.pcblist where the kernel has UDP-Lite, with each
// socket's owner (so_uid) and kernel address (Listener.Inode). See
// ParsePcblist for the layouts and their checks.
//
// A ListenerDumper is not safe for concurrent use.
type ListenerDumper struct {
	buf    []byte
	closed bool
}

// NewListenerDumper checks that the kernel's pcblist layouts are ones
// guardd knows, so that a mismatch shows when guardd starts.
func NewListenerDumper() (*ListenerDumper, error) {
	d := &ListenerDumper{buf: make([]byte, 64<<10)}
	if _, err := d.Dump(nil); err != nil {
		return nil, err
	}
	return d, nil
}

// Close releases the dumper.
func (d *ListenerDumper) Close() error {
	d.closed = true
	return nil
}

// Dump appends every listening TCP socket and every bound, unconnected UDP
// socket to dst. A list that changed while the kernel copied it is read
// again (up to three times), as a sock_diag dump interrupted on Linux.
func (d *ListenerDumper) Dump(dst []Listener) ([]Listener, error) {
	if d.closed {
		return dst, errors.New("pcblist: dumper closed")
	}
	for _, p := range [...]struct {
		name  string
		proto Proto
	}{{"net.inet.tcp.pcblist", TCP}, {"net.inet.udp.pcblist", UDP}, {"net.inet.udplite.pcblist", UDPLite}} {
		for try := 0; ; try++ {
			n := len(dst)
			b, err := sysctlByName(p.name, &d.buf)
			if p.proto == UDPLite && errors.Is(err, unix.ENOENT) {
				break // a kernel without UDP-Lite
			}
			if err != nil {
				return dst, err
			}
			pl, err := ParsePcblist(b, p.proto, func(l Listener) { dst = append(dst, l) })
			if err != nil {
				return dst[:n], fmt.Errorf("%s: %w", p.name, err)
			}
			if pl.Changed && try < 3 {
				dst = dst[:n]
				continue
			}
			break
		}
	}
	return dst, nil
}

// SocketScanner finds which sockets a process holds, from kern.file (the
// whole file table, as sockstat(1) reads it: FreeBSD has no per-process
// list with socket addresses that is as cheap). One read serves every
// Scan within socketTableTTL; Holds always reads afresh.
type SocketScanner struct {
	buf   []byte
	byPID map[int32][]uint64
	at    time.Time
	err   error
}

// socketTableTTL is how long one kern.file read answers Scan: the
// listener observer scans a user's processes one after the other, within
// one tick.
const socketTableTTL = 200 * time.Millisecond

// NewSocketScanner returns a scanner.
func NewSocketScanner() *SocketScanner {
	return &SocketScanner{byPID: map[int32][]uint64{}}
}

func (s *SocketScanner) refresh(force bool) error {
	if !force && !s.at.IsZero() && time.Since(s.at) < socketTableTTL {
		return s.err
	}
	s.at = time.Now()
	clear(s.byPID)
	b, err := sysctlByName("kern.file", &s.buf)
	if err == nil {
		err = ParseXfiles(b, func(x XfileSocket) { s.byPID[x.PID] = append(s.byPID[x.PID], x.Socket) })
	}
	s.err = err
	return err
}

// Scan calls fn with the kernel address of each socket among pid's open
// descriptors, until fn returns false. It returns ErrGone when the
// process holds no descriptor at all (gone, or a zombie).
func (s *SocketScanner) Scan(pid int32, fn func(inode uint64) bool) error {
	if err := s.refresh(false); err != nil {
		return err
	}
	socks, ok := s.byPID[pid]
	if !ok {
		if _, _, err := readKinfo(pid, &s.buf); errors.Is(err, ErrGone) {
			return ErrGone
		}
		return nil
	}
	for _, so := range socks {
		if !fn(so) {
			return nil
		}
	}
	return nil
}

// Holds reports whether pid has a descriptor on the socket, from a fresh
// read of the file table.
func (s *SocketScanner) Holds(pid int32, inode uint64) (bool, error) {
	if err := s.refresh(true); err != nil {
		return false, err
	}
	for _, so := range s.byPID[pid] {
		if so == inode {
			return true, nil
		}
	}
	return false, nil
}

// EphemeralPorts returns the range the kernel picks local ports from
// (net.inet.ip.portrange.first and .last, which IPv6 shares).
func EphemeralPorts() (lo, hi uint16, err error) {
	first, err := sysctlInt("net.inet.ip.portrange.first")
	if err != nil {
		return 0, 0, err
	}
	last, err := sysctlInt("net.inet.ip.portrange.last")
	if err != nil {
		return 0, 0, err
	}
	if first > last { // the kernel accepts them either way round
		first, last = last, first
	}
	if first < 0 || last > 65535 {
		return 0, 0, fmt.Errorf("net.inet.ip.portrange %d-%d", first, last)
	}
	return uint16(first), uint16(last), nil
}

// FindCgroup2Root returns ErrUnsupported: FreeBSD has no cgroups, so
// listen blocks are enforced by detect-and-kill alone.
func FindCgroup2Root() (string, error) { return "", ErrUnsupported }

// StartedBy reports whether the process had started by sinceBoot (time
// since boot): on FreeBSD StartTime is microseconds since boot.
func (id ProcID) StartedBy(sinceBoot time.Duration) bool {
	return time.Duration(id.StartTime)*time.Microsecond <= sinceBoot
}
