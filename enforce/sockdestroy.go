package enforce

import (
	"encoding/binary"
	"fmt"

	"github.com/guardd/guardd/platform"
)

// Closing a socket without its holder: sock_diag's SOCK_DESTROY asks the
// kernel to abort a TCP or UDP socket found by its addresses and cookie
// (tcp_abort, udp_abort), whoever holds it. It is what closes a listener
// that no /proc/PID/fd shows: kept in a thread's private descriptor table
// (unshare(CLONE_FILES)) or in flight in a unix socket (SCM_RIGHTS). The
// holder's accept(2) or recv(2) then fails; the port is free again.

// ActCloseSocket is the audit log's action for a socket closed this way.
const ActCloseSocket = "close-socket"

// CloseSocket is one socket to close.
type CloseSocket struct {
	Listener platform.Listener
	DryRun   bool
	// Check re-validates against the policy right before acting: why not
	// to act, or "". It may be nil.
	Check func() string
}

// Netlink and sock_diag constants (linux/netlink.h, linux/sock_diag.h).
const (
	nlmsgHdrLen      = 16
	nlmFRequest      = 0x1
	nlmFAck          = 0x4
	sockDestroy      = 21
	inetDiagReqV2Len = 56
	afInet, afInet6  = 2, 10
)

// appendDestroyRequest appends the SOCK_DESTROY message for l: struct
// inet_diag_req_v2 with the socket's local address and port (remote ones
// zero: a listener has none) and its cookie, which the kernel checks so
// that only this very socket is closed.
func appendDestroyRequest(b []byte, l platform.Listener, seq uint32) ([]byte, error) {
	addr := l.Addr
	family := uint8(afInet6)
	switch {
	case !addr.IsValid():
		return b, fmt.Errorf("socket %s: no address", l)
	case addr.Is4():
		family = afInet
	}
	if l.Cookie == 0 {
		return b, fmt.Errorf("socket %s: no cookie", l)
	}
	start := len(b)
	b = append(b, make([]byte, nlmsgHdrLen+inetDiagReqV2Len)...)
	msg := b[start:]
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], sockDestroy)
	ne.PutUint16(msg[6:], nlmFRequest|nlmFAck)
	ne.PutUint32(msg[8:], seq)
	req := msg[nlmsgHdrLen:]
	req[0] = family
	req[1] = uint8(l.Proto)
	ne.PutUint32(req[4:], ^uint32(0)) // any state
	id := req[8:]
	binary.BigEndian.PutUint16(id[0:], l.Port) // idiag_sport
	if family == afInet {
		a := addr.As4()
		copy(id[4:8], a[:]) // idiag_src
	} else {
		a := addr.As16()
		copy(id[4:20], a[:])
	}
	// idiag_dport, idiag_dst, idiag_if: zero. idiag_cookie: low half first.
	ne.PutUint32(id[40:], uint32(l.Cookie))
	ne.PutUint32(id[44:], uint32(l.Cookie>>32))
	return b, nil
}

// parseAck returns the errno of a netlink acknowledgement for seq (0:
// success).
func parseAck(b []byte, seq uint32) (errno int32, err error) {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		n := int(ne.Uint32(b[0:]))
		if n < nlmsgHdrLen || n > len(b) {
			return 0, fmt.Errorf("sock_diag: message length %d out of bounds", n)
		}
		typ, msgSeq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
		if typ == 2 && msgSeq == seq { // NLMSG_ERROR
			if n < nlmsgHdrLen+4 {
				return 0, fmt.Errorf("sock_diag: short acknowledgement")
			}
			return -int32(ne.Uint32(b[nlmsgHdrLen:])), nil
		}
		b = b[min((n+3)&^3, len(b)):]
	}
	return 0, fmt.Errorf("sock_diag: no acknowledgement")
}

// CloseSocket closes one socket by its cookie: the floor on its uid, the
// caller's Check, dry-run, SOCK_DESTROY (the kernel checks the cookie, so
// only this very socket is closed).
func (e *Enforcer) CloseSocket(c CloseSocket) Result {
	l := c.Listener
	if why := e.floor(uidTarget(TargetSocket, l.UID), 0); why != "" {
		return Result{Outcome: Skipped, Reason: protected(why)}
	}
	if c.Check != nil {
		if why := c.Check(); why != "" {
			return Result{Outcome: Skipped, Reason: why}
		}
	}
	if c.DryRun {
		return Result{Outcome: WouldDo, Reason: "would close the socket (SOCK_DESTROY)"}
	}
	if err := e.host().destroySocket(l); err != nil {
		if err == platform.ErrGone {
			return Result{Outcome: Skipped, Reason: "the socket was closed meanwhile"}
		}
		return Result{Outcome: Failed, Reason: err.Error()}
	}
	return Result{Outcome: Done}
}
