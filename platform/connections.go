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
	return walkDiag(b, seq, func(payload []byte) error {
		if len(payload) < diagInetDiagMsgLen {
			return fmt.Errorf("sock_diag: inet_diag_msg of %d bytes, want %d", len(payload), diagInetDiagMsgLen)
		}
		fn(binary.NativeEndian.Uint32(payload[64:]), payload[1])
		return nil
	})
}
