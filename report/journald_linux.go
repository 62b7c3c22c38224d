package report

import (
	"errors"
	"net"

	"golang.org/x/sys/unix"
)

// sendJournal sends one entry. An entry too big for one datagram goes the
// way sd_journal_sendv(3) sends it: in a sealed memfd passed over the
// socket (journald reads entries of up to 768 MiB that way).
func sendJournal(c *net.UnixConn, entry []byte) error {
	_, err := c.Write(entry)
	if err == nil || !errors.Is(err, unix.EMSGSIZE) && !errors.Is(err, unix.ENOBUFS) {
		return err
	}
	fd, err := unix.MemfdCreate("guardd-journal-entry", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for b := entry; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return err
	}
	// WriteMsgUnix refuses a connected datagram socket: send on the fd.
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(s uintptr) bool {
		serr = unix.Sendmsg(int(s), nil, unix.UnixRights(fd), nil, 0)
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	return serr
}
