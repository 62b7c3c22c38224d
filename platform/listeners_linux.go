package platform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// ListenerDumper lists the host's listening sockets with sock_diag
// (NETLINK_SOCK_DIAG, inet_diag): one dump per protocol and family, each a
// few syscalls, with the owner uid and the inode of every socket. It sees
// the sockets of its own network namespace. Parsing /proc/net/tcp* or
// running ss(8) gives the same facts at many times the cost.
//
// A ListenerDumper is not safe for concurrent use.
type ListenerDumper struct {
	fd  int
	seq uint32
	req []byte
	buf []byte
	// unsupported: requests the kernel refused as unknown (no UDP-Lite
	// in this kernel): skipped from then on, never fatal.
	unsupported [len(listenerRequests)]bool

	raw func(req DiagRequest, b []byte) // sees every answer as received (fixture capture)
}

// dumpTimeout bounds one recv(2): the kernel answers a dump at once, so a
// dump that stalls is a kernel problem that must not wedge the loop.
const dumpTimeout = 5 * time.Second

// NewListenerDumper opens a sock_diag netlink socket.
func NewListenerDumper() (*ListenerDumper, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	tv := unix.NsecToTimeval(dumpTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sock_diag socket: SO_RCVTIMEO: %w", err)
	}
	// 32 KiB is the largest skb a netlink dump fills (netlink_dump); more
	// leaves room for MSG_TRUNC to never happen.
	return &ListenerDumper{fd: fd, buf: make([]byte, 64<<10)}, nil
}

// Close closes the netlink socket.
func (d *ListenerDumper) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// Dump appends every listening TCP socket and every bound, unconnected UDP
// socket (IPv4 and IPv6) to dst.
func (d *ListenerDumper) Dump(dst []Listener) ([]Listener, error) {
	if d.fd < 0 {
		return dst, errors.New("sock_diag: dumper closed")
	}
	for i, r := range listenerRequests {
		if d.unsupported[i] {
			continue
		}
		for try := 0; ; try++ {
			n := len(dst)
			var err error
			dst, err = d.dump(dst, r)
			if errors.Is(err, ErrDumpInterrupted) && try < 3 {
				dst = dst[:n] // sockets came or went meanwhile: dump again
				continue
			}
			if r.Proto == UDPLite && errors.Is(err, errDiagUnknown) {
				d.unsupported[i] = true // a kernel without UDP-Lite
				dst, err = dst[:n], nil
			}
			if err != nil {
				return dst[:n], fmt.Errorf("%s/%s: %w", familyName(r.Family), r.Proto, err)
			}
			break
		}
	}
	return dst, nil
}

func familyName(f uint8) string {
	if f == diagAfInet6 {
		return "ipv6"
	}
	return "ipv4"
}

func (d *ListenerDumper) dump(dst []Listener, r DiagRequest) ([]Listener, error) {
	d.seq++
	r.Seq = d.seq
	d.req = AppendDiagRequest(d.req[:0], r)
	if err := unix.Sendto(d.fd, d.req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return dst, fmt.Errorf("sock_diag request: %w", err)
	}
	add := func(l Listener) { dst = append(dst, l) }
	for {
		n, _, flags, _, err := unix.Recvmsg(d.fd, d.buf, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return dst, fmt.Errorf("sock_diag: no answer within %s", dumpTimeout)
		}
		if err != nil {
			return dst, fmt.Errorf("sock_diag recv: %w", err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return dst, errors.New("sock_diag: message truncated")
		}
		if d.raw != nil {
			d.raw(r, d.buf[:n])
		}
		done, err := ParseDiagMessages(d.buf[:n], r.Seq, r.Proto, add)
		if err != nil || done {
			return dst, err
		}
	}
}

// SocketScanner finds which sockets a process holds, from the links in
// /proc/PID/fd. It reuses its buffers; it is not safe for concurrent use.
type SocketScanner struct {
	dirBuf  []byte
	linkBuf []byte
	tids    []int32
}

// NewSocketScanner returns a scanner.
func NewSocketScanner() *SocketScanner {
	return &SocketScanner{dirBuf: make([]byte, 16<<10), linkBuf: make([]byte, 64)}
}

// Scan calls fn with the inode of each socket among pid's open
// descriptors, until fn returns false: those of /proc/PID/fd, and those of
// every thread that has a descriptor table of its own (unshare(2) with
// CLONE_FILES: /proc/PID/fd shows the main thread's table only), found by
// kcmp(2) KCMP_FILES. A socket in two tables is reported twice. It returns
// ErrGone when the process does not exist.
func (s *SocketScanner) Scan(pid int32, fn func(inode uint64) bool) error {
	p := "/proc/" + strconv.Itoa(int(pid))
	stop, err := s.scanDir(p+"/fd", fn)
	if err != nil || stop {
		return err
	}
	tids, err := s.privateTables(pid, p+"/task")
	if err != nil {
		return nil // the process's own table was read; threads come and go
	}
	for _, tid := range tids {
		stop, err := s.scanDir(p+"/task/"+strconv.Itoa(int(tid))+"/fd", fn)
		if stop {
			return nil
		}
		_ = err // the thread ended meanwhile
	}
	return nil
}

// privateTables returns the threads of pid (the leader excluded) whose
// descriptor table is not the leader's. A kernel without kcmp(2) (no
// CONFIG_KCMP) gets every thread, so that nothing hides there either.
func (s *SocketScanner) privateTables(pid int32, taskDir string) ([]int32, error) {
	fd, err := unix.Open(taskDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	s.tids = s.tids[:0]
	for {
		n, err := unix.Getdents(fd, s.dirBuf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		forEachDirent(s.dirBuf[:n], func(name []byte) {
			if tid, ok := parseUint(name); ok && tid != uint64(pid) && tid < 1<<31 {
				s.tids = append(s.tids, int32(tid))
			}
		})
	}
	out := s.tids[:0]
	for _, tid := range s.tids {
		const kcmpFiles = 2
		r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(tid), kcmpFiles, 0, 0, 0)
		switch {
		case e == 0 && r == 0: // the leader's table: already read
		case e == unix.ESRCH: // gone
		default: // a table of its own, or no kcmp here
			out = append(out, tid)
		}
	}
	return out, nil
}

// forEachDirent calls fn with the name of each linux_dirent64 in b.
func forEachDirent(b []byte, fn func(name []byte)) {
	for len(b) >= 19 {
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen < 19 || reclen > len(b) {
			return
		}
		name := b[19:reclen]
		if i := indexNUL(name); i >= 0 {
			name = name[:i]
		}
		b = b[reclen:]
		if len(name) > 0 && name[0] != '.' {
			fn(name)
		}
	}
}

// scanDir reads one fd directory; stop is true when fn asked to stop.
func (s *SocketScanner) scanDir(dir string, fn func(inode uint64) bool) (stop bool, err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, goneOr(err, "open "+dir)
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Getdents(fd, s.dirBuf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, goneOr(err, "read "+dir)
		}
		if n <= 0 {
			return false, nil
		}
		b := s.dirBuf[:n]
		for len(b) >= 19 {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return false, errors.New("read " + dir + ": malformed dirent")
			}
			name := b[19:reclen]
			if i := indexNUL(name); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			if len(name) == 0 || name[0] == '.' {
				continue
			}
			// Readlinkat wants a string; the descriptor numbers are short.
			m, err := unix.Readlinkat(fd, string(name), s.linkBuf)
			if err != nil {
				continue // closed meanwhile
			}
			if inode, ok := ParseSocketLink(s.linkBuf[:m]); ok && !fn(inode) {
				return true, nil
			}
		}
	}
}

// Holds reports whether pid has a descriptor on the socket inode.
func (s *SocketScanner) Holds(pid int32, inode uint64) (bool, error) {
	found := false
	err := s.Scan(pid, func(i uint64) bool {
		found = i == inode
		return !found
	})
	return found, err
}

// EphemeralPorts returns the range the kernel picks local ports from when a
// socket binds port 0 or sends without binding
// (/proc/sys/net/ipv4/ip_local_port_range, which IPv6 shares).
func EphemeralPorts() (lo, hi uint16, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	return ParsePortRange(b)
}

// FindCgroup2Root returns where the root of the cgroup v2 hierarchy is
// mounted, from /proc/self/mountinfo.
func FindCgroup2Root() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	mounts, _ := ParseMountInfo(b)
	if p, ok := Cgroup2Root(mounts); ok {
		return p, nil
	}
	return "", errors.New("no cgroup2 filesystem mounted")
}

// StartedBy reports whether the process had started by sinceBoot
// (CLOCK_BOOTTIME, the clock of the start time in /proc/PID/stat). A
// process that was seen doing something at sinceBoot and still has its pid
// now is this one if it started by then: a process that reused the pid
// started later.
func (id ProcID) StartedBy(sinceBoot time.Duration) bool {
	return time.Duration(id.StartTime)*(time.Second/clockTicks) <= sinceBoot
}
