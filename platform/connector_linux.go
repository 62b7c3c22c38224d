package platform

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Connector receives process events (fork, exec, uid change, exit) from
// the kernel's proc connector (NETLINK_CONNECTOR, CN_IDX_PROC). It needs
// root (CAP_NET_ADMIN) and a kernel with CONFIG_PROC_EVENTS.
type Connector struct {
	fd   int
	wake int // eventfd: Close writes it to interrupt a Read blocked in poll
	buf  []byte
	// batch is connectorBatchWindow when the receive buffer is large
	// enough to hold what arrives meanwhile, else 0.
	batch time.Duration

	mu      sync.Mutex // guards the fields below
	stop    bool
	reading bool          // a Read is in progress: it closes the socket when it sees stop
	done    chan struct{} // closed by that Read when it returns after stop
}

// OpenConnector subscribes to process events with a receive buffer of
// rcvbuf bytes: large, so that a fork storm's burst of events fits
// (SO_RCVBUFFORCE, which root may use past net.core.rmem_max).
func OpenConnector(rcvbuf int) (*Connector, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("proc connector socket: %w", err)
	}
	if rcvbuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
		}
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc, Pid: 0}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("proc connector bind: %w", err)
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("proc connector: %w", err)
	}
	port := local.(*unix.SockaddrNetlink).Pid
	var filter uint32
	var uts unix.Utsname
	if unix.Uname(&uts) == nil && kernelAtLeast(unix.ByteSliceToString(uts.Release[:]), 6, 6) {
		filter = ConnectorEvents // the kernel filters (cn_proc's event mask, Linux 6.6)
	}
	if err := unix.Sendto(fd, connectorSubscribe(port, true, filter), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("proc connector subscribe: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("proc connector: eventfd: %w", err)
	}
	c := &Connector{fd: fd, wake: wake, buf: make([]byte, 64<<10)}
	// The kernel reports the buffer doubled for its bookkeeping (socket(7)).
	if got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil && got/2 >= connectorBatchBuffer {
		c.batch = connectorBatchWindow
	}
	return c, nil
}

// Read blocks until events arrive and calls fn for each. It returns
// ErrEventsLost when the kernel dropped events (the caller resynchronises
// and calls Read again), and os.ErrClosed after Close.
func (c *Connector) Read(fn func(ProcEvent)) error {
	c.mu.Lock()
	if c.stop {
		c.mu.Unlock()
		return os.ErrClosed
	}
	c.reading = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.reading = false
		if c.stop {
			unix.Close(c.fd) // Close left it to us: no syscall can still be using it
			unix.Close(c.wake)
			close(c.done)
		}
		c.mu.Unlock()
	}()
	// Neither close(2) nor shutdown(2) wakes a recvfrom blocked on a
	// netlink socket, so Read waits in poll on the socket and an eventfd
	// that Close writes.
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}, {Fd: int32(c.wake), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("proc connector: poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return os.ErrClosed
		}
		if fds[0].Revents == 0 {
			continue
		}
		// Drain what is queued before polling again: one wake-up per
		// burst, not one per event (a fork is three or four events).
		got := false
		for {
			n, _, err := unix.Recvfrom(c.fd, c.buf, unix.MSG_DONTWAIT)
			switch {
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.EAGAIN):
			case errors.Is(err, unix.ENOBUFS):
				return ErrEventsLost
			case err != nil:
				return fmt.Errorf("proc connector: %w", err)
			case n == 0:
			default:
				if err := ParseConnector(c.buf[:n], fn); err != nil {
					return err
				}
				got = true
				continue
			}
			break
		}
		if got && c.batch > 0 {
			// Then let events gather for a moment: a host that forks a
			// few hundred short processes a second would otherwise wake
			// this thread for nearly every event, and on a VM a wake-up
			// costs more than the event (BENCHMARKS.md, fork storms).
			time.Sleep(c.batch)
		}
	}
}

// connectorBatchWindow is how long Read lets events gather after a batch:
// at most this much later seen, at most 1/connectorBatchWindow wake-ups a
// second. Only with a receive buffer of connectorBatchBuffer or more
// (a datagram takes about 1 KiB of it: a 1 MiB buffer holds a thousand
// events, 200,000 a second for the window).
const (
	connectorBatchWindow = 5 * time.Millisecond
	connectorBatchBuffer = 1 << 20
)

// Close stops a Read in progress, waits for it to return, and releases the
// socket. The descriptor is closed only once no Read can be inside
// recvfrom on it: closing it under a blocked reader could let the number
// be reused for another file before the reader's next call.
func (c *Connector) Close() error {
	c.mu.Lock()
	if c.stop {
		c.mu.Unlock()
		return nil
	}
	c.stop = true
	c.done = make(chan struct{})
	reading := c.reading
	c.mu.Unlock()
	if reading {
		unix.Write(c.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0}) // eventfd takes a uint64
		<-c.done
		return nil
	}
	unix.Close(c.wake)
	return unix.Close(c.fd)
}
