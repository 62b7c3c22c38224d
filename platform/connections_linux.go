package platform

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ConnectionCounter counts the established TCP connections (IPv4 and
// IPv6) of every uid with one sock_diag dump per family. It sees the
// sockets of its own network namespace. It is not safe for concurrent
// use.
type ConnectionCounter struct {
	d *ListenerDumper
}

// NewConnectionCounter opens a sock_diag netlink socket.
func NewConnectionCounter() (*ConnectionCounter, error) {
	d, err := NewListenerDumper()
	if err != nil {
		return nil, err
	}
	return &ConnectionCounter{d: d}, nil
}

// Close closes the netlink socket.
func (c *ConnectionCounter) Close() error { return c.d.Close() }

// Count fills dst (cleared first) with each uid's established TCP
// sockets. Both ends of a loopback connection count, each for its owner.
func (c *ConnectionCounter) Count(dst map[uint32]int32) error {
	clear(dst)
	d := c.d
	if d.fd < 0 {
		return errors.New("sock_diag: counter closed")
	}
	add := func(uid uint32, state uint8) {
		if state == diagTcpEstablished {
			dst[uid]++
		}
	}
	for try := 0; ; try++ {
		err := c.countAll(dst, add)
		if errors.Is(err, ErrDumpInterrupted) && try < 3 {
			clear(dst) // sockets came or went meanwhile: count again
			continue
		}
		return err
	}
}

func (c *ConnectionCounter) countAll(dst map[uint32]int32, add func(uint32, uint8)) error {
	for _, r := range connectionRequests {
		if err := c.dump(r, add); err != nil {
			return fmt.Errorf("%s/%s: %w", familyName(r.Family), r.Proto, err)
		}
	}
	return nil
}

func (c *ConnectionCounter) dump(r DiagRequest, fn func(uint32, uint8)) error {
	d := c.d
	d.seq++
	r.Seq = d.seq
	d.req = AppendDiagRequest(d.req[:0], r)
	if err := unix.Sendto(d.fd, d.req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag request: %w", err)
	}
	for {
		n, _, flags, _, err := unix.Recvmsg(d.fd, d.buf, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("sock_diag: no answer within %s", dumpTimeout)
		}
		if err != nil {
			return fmt.Errorf("sock_diag recv: %w", err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return errors.New("sock_diag: message truncated")
		}
		done, err := ParseDiagOwners(d.buf[:n], r.Seq, fn)
		if err != nil || done {
			return err
		}
	}
}
