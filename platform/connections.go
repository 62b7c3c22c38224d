package platform

import (
	"encoding/binary"
	"fmt"
)

// Established TCP connections per uid, from one sock_diag dump per
// family (the listener dumps' netlink code, with a state filter).

// diagTcpEstablished is TCP_ESTABLISHED (include/net/tcp_states.h).
const diagTcpEstablished = 1

// connectionRequests are the dumps of one count: established TCP
// sockets, IPv4 and IPv6 (an IPv4-mapped connection is in the IPv6 dump
// only).
var connectionRequests = [...]DiagRequest{
	{Family: diagAfInet, Proto: TCP, States: 1 << diagTcpEstablished},
	{Family: diagAfInet6, Proto: TCP, States: 1 << diagTcpEstablished},
}

// ParseDiagOwners decodes the netlink messages of one recv(2) of an
// inet_diag dump answering request seq, as ParseDiagMessages does, and
// calls fn with the owner uid and TCP state of each socket. Malformed
// input is an error, never a panic.
func ParseDiagOwners(b []byte, seq uint32, fn func(uid uint32, state uint8)) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < diagNlmsgHdrLen {
			return false, fmt.Errorf("sock_diag: %d trailing bytes, shorter than a netlink header", len(b))
		}
		n := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		flags := ne.Uint16(b[6:])
		msgSeq := ne.Uint32(b[8:])
		if n < diagNlmsgHdrLen || n > len(b) || n > diagMaxNetlinkMessage {
			return false, fmt.Errorf("sock_diag: message length %d out of bounds (%d bytes left)", n, len(b))
		}
		payload := b[diagNlmsgHdrLen:n]
		b = b[min(diagAlign(n), len(b)):]
		if msgSeq != seq {
			continue
		}
		if flags&diagNlmFDumpIntr != 0 {
			return false, ErrDumpInterrupted
		}
		switch typ {
		case diagNlmsgNoop:
		case diagNlmsgDone:
			if len(payload) >= 4 {
				if e := int32(ne.Uint32(payload)); e < 0 {
					return true, fmt.Errorf("sock_diag: dump failed: errno %d", -e)
				}
			}
			return true, nil
		case diagNlmsgError:
			if len(payload) < 4 {
				return false, fmt.Errorf("sock_diag: short error message")
			}
			if e := int32(ne.Uint32(payload)); e != 0 {
				return true, fmt.Errorf("sock_diag: request refused: errno %d", -e)
			}
			return true, nil
		case diagSockDiagByFamily:
			if len(payload) < diagInetDiagMsgLen {
				return false, fmt.Errorf("sock_diag: inet_diag_msg of %d bytes, want %d", len(payload), diagInetDiagMsgLen)
			}
			fn(ne.Uint32(payload[64:]), payload[1])
		default:
			return false, fmt.Errorf("sock_diag: unexpected message type %d", typ)
		}
	}
	return false, nil
}
