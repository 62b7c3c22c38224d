package enforce

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

var destroySeq atomic.Uint32

// destroySocket sends SOCK_DESTROY for l on a netlink socket of its own
// (closing a socket is rare: no socket is kept open for it).
func destroySocket(l platform.Listener) error {
	seq := destroySeq.Add(1)
	req, err := appendDestroyRequest(nil, l, seq)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(5e9)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("sock_diag socket: %w", err)
	}
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("SOCK_DESTROY: %w", err)
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("SOCK_DESTROY: %w", err)
		}
		errno, err := parseAck(buf[:n], seq)
		if err != nil {
			return err
		}
		switch e := unix.Errno(errno); {
		case errno == 0:
			return nil
		case e == unix.ENOENT:
			return platform.ErrGone
		case e == unix.ESTALE:
			return errors.New("SOCK_DESTROY: the kernel found another socket at that address (SO_REUSEPORT group?)")
		case e == unix.EOPNOTSUPP:
			return errors.New("SOCK_DESTROY: not supported by this kernel for this protocol (CONFIG_INET_DIAG_DESTROY)")
		default:
			return fmt.Errorf("SOCK_DESTROY: %w", e)
		}
	}
}
