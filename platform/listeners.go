package platform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Proto is the transport protocol of a listening socket.
type Proto uint8

// Protocols a Listener may have.
const (
	TCP     Proto = 6   // IPPROTO_TCP (MPTCP listeners show as their TCP subflow's listener, same inode)
	UDP     Proto = 17  // IPPROTO_UDP
	UDPLite Proto = 136 // IPPROTO_UDPLITE: a datagram socket like UDP, dumped apart
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case UDPLite:
		return "udplite"
	}
	return "proto" + strconv.Itoa(int(p))
}

// Listener is a socket that accepts traffic from others: a TCP socket in
// LISTEN state, or a UDP or UDP-Lite socket bound to a local port and not
// connected.
type Listener struct {
	Proto Proto
	Addr  netip.Addr // local address; IPv6 sockets keep their form (::, ::ffff:127.0.0.1)
	Port  uint16     // local port, host order
	UID   uint32     // owner: the fsuid of the process that created the socket
	Inode uint64     // socket inode: /proc/PID/fd/N links to "socket:[Inode]"
	// Cookie is the kernel's id of the socket (sock_gen_cookie), unique
	// until reboot: what SOCK_DESTROY is asked to close, so that a new
	// socket on the same port is never closed in its place.
	Cookie uint64
}

// Datagram reports whether the protocol is UDP-like (bound and unconnected
// is listening).
func (p Proto) Datagram() bool { return p == UDP || p == UDPLite }

// AddrPort formats the local address as an admin writes it: 0.0.0.0:8080,
// [::1]:53.
func (l Listener) AddrPort() string { return netip.AddrPortFrom(l.Addr, l.Port).String() }

func (l Listener) String() string { return l.AddrPort() + "/" + l.Proto.String() }

// Netlink and sock_diag constants (linux/netlink.h, linux/sock_diag.h,
// linux/inet_diag.h). They are fixed by the kernel ABI, so the pure
// encoders and decoders below build and are tested on every OS.
const (
	diagNlmsgHdrLen       = 16
	diagNlmsgNoop         = 1
	diagNlmsgError        = 2
	diagNlmsgDone         = 3
	diagNlmFRequest       = 0x1
	diagNlmFDump          = 0x300 // NLM_F_ROOT | NLM_F_MATCH
	diagSockDiagByFamily  = 20
	diagInetDiagReqV2Len  = 56
	diagInetDiagMsgLen    = 72
	diagAfInet            = 2
	diagAfInet6           = 10
	diagTcpClose          = 7
	diagTcpListen         = 10
	diagNlmsgAlignTo      = 4
	diagMaxNetlinkMessage = 1 << 20 // a sane bound on one message's length
)

// DiagRequest is one inet_diag dump request.
type DiagRequest struct {
	Family uint8  // diagAfInet or diagAfInet6
	Proto  Proto  // TCP or UDP
	States uint32 // bit mask of TCP states (1 << state)
	Seq    uint32
}

// listenerRequests are the dumps of one listener sample: listening TCP
// sockets and unconnected UDP and UDP-Lite sockets (a bound, unconnected
// UDP socket is in state TCP_CLOSE, a connected one in TCP_ESTABLISHED),
// IPv4 and IPv6. MPTCP needs no dump of its own: an MPTCP listener has a
// TCP subflow listener on the same port and inode, in the TCP dump.
var listenerRequests = [...]DiagRequest{
	{Family: diagAfInet, Proto: TCP, States: 1 << diagTcpListen},
	{Family: diagAfInet6, Proto: TCP, States: 1 << diagTcpListen},
	{Family: diagAfInet, Proto: UDP, States: 1 << diagTcpClose},
	{Family: diagAfInet6, Proto: UDP, States: 1 << diagTcpClose},
	{Family: diagAfInet, Proto: UDPLite, States: 1 << diagTcpClose},
	{Family: diagAfInet6, Proto: UDPLite, States: 1 << diagTcpClose},
}

// AppendDiagRequest appends the netlink message of r (nlmsghdr followed by
// struct inet_diag_req_v2) to b.
func AppendDiagRequest(b []byte, r DiagRequest) []byte {
	start := len(b)
	b = append(b, make([]byte, diagNlmsgHdrLen+diagInetDiagReqV2Len)...)
	msg := b[start:]
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], diagSockDiagByFamily)
	ne.PutUint16(msg[6:], diagNlmFRequest|diagNlmFDump)
	ne.PutUint32(msg[8:], r.Seq)
	// msg[12:16]: port id 0, the kernel fills it in.
	req := msg[diagNlmsgHdrLen:]
	req[0] = r.Family
	req[1] = uint8(r.Proto)
	// req[2] idiag_ext = 0: no attributes wanted; req[3] pad.
	ne.PutUint32(req[4:], r.States)
	// req[8:56]: struct inet_diag_sockid, all zero: no filter.
	return b
}

// ErrDumpInterrupted reports a dump whose kernel state changed while it
// ran (NLM_F_DUMP_INTR): its contents may be inconsistent.
var ErrDumpInterrupted = errors.New("sock_diag dump interrupted")

const diagNlmFDumpIntr = 0x10

// errDiagUnknown is a request the kernel has no handler for (a protocol
// it was built without).
var errDiagUnknown = errors.New("sock_diag: protocol not supported by this kernel")

// ParseDiagMessages decodes the netlink messages of one recv(2) of an
// inet_diag dump answering request seq. It calls fn for each socket and
// reports whether the dump is complete (NLMSG_DONE was seen). proto is the
// protocol the request asked for: inet_diag_msg does not carry it.
// Messages of another sequence number (a stale dump) are skipped.
// Malformed input is an error, never a panic.
func ParseDiagMessages(b []byte, seq uint32, proto Proto, fn func(Listener)) (done bool, err error) {
	return walkDiag(b, seq, func(payload []byte) error {
		l, ok, err := parseInetDiagMsg(payload, proto)
		if err == nil && ok {
			fn(l)
		}
		return err
	})
}

// walkDiag walks the netlink messages of one recv(2) of an inet_diag dump
// answering request seq, handing each inet_diag_msg payload to sock; it
// reports whether the dump is complete (NLMSG_DONE or an acknowledgement
// was seen). The one walker of every sock_diag dump guardd makes: the
// bounds and error checks live here once.
func walkDiag(b []byte, seq uint32, sock func(payload []byte) error) (done bool, err error) {
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
		next := min(diagAlign(n), len(b))
		b = b[next:]
		if msgSeq != seq {
			continue
		}
		if flags&diagNlmFDumpIntr != 0 {
			return false, ErrDumpInterrupted
		}
		switch typ {
		case diagNlmsgNoop:
		case diagNlmsgDone:
			// NLMSG_DONE carries an int: a negative errno when the dump failed.
			if len(payload) >= 4 {
				if e := int32(ne.Uint32(payload)); e < 0 {
					if e == -2 || e == -22 {
						return true, fmt.Errorf("%w: errno %d", errDiagUnknown, -e)
					}
					return true, fmt.Errorf("sock_diag: dump failed: errno %d", -e)
				}
			}
			return true, nil
		case diagNlmsgError:
			if len(payload) < 4 {
				return false, errors.New("sock_diag: short error message")
			}
			if e := int32(ne.Uint32(payload)); e != 0 {
				err := fmt.Errorf("sock_diag: request refused: errno %d", -e)
				if e == -2 || e == -22 { // ENOENT, EINVAL: no handler for the protocol
					err = fmt.Errorf("%w: errno %d", errDiagUnknown, -e)
				}
				return true, err
			}
			return true, nil // an acknowledgement
		case diagSockDiagByFamily:
			if err := sock(payload); err != nil {
				return false, err
			}
		default:
			return false, fmt.Errorf("sock_diag: unexpected message type %d", typ)
		}
	}
	return false, nil
}

func diagAlign(n int) int { return (n + diagNlmsgAlignTo - 1) &^ (diagNlmsgAlignTo - 1) }

// parseInetDiagMsg decodes struct inet_diag_msg. ok is false for a socket
// that is not a listener (bound to no port, or in another state than the
// request asked for: the kernel filters, this is a second line).
func parseInetDiagMsg(b []byte, proto Proto) (l Listener, ok bool, err error) {
	if len(b) < diagInetDiagMsgLen {
		return l, false, fmt.Errorf("sock_diag: inet_diag_msg of %d bytes, want %d", len(b), diagInetDiagMsgLen)
	}
	ne := binary.NativeEndian
	family, state := b[0], b[1]
	l.Proto = proto
	l.Port = binary.BigEndian.Uint16(b[4:6]) // idiag_sport, network order
	switch family {
	case diagAfInet:
		l.Addr = netip.AddrFrom4([4]byte(b[8:12]))
	case diagAfInet6:
		l.Addr = netip.AddrFrom16([16]byte(b[8:24]))
	default:
		return l, false, fmt.Errorf("sock_diag: address family %d", family)
	}
	// idiag_cookie: two u32 in host order, the low half first.
	l.Cookie = uint64(ne.Uint32(b[44:])) | uint64(ne.Uint32(b[48:]))<<32
	l.UID = ne.Uint32(b[64:])
	l.Inode = uint64(ne.Uint32(b[68:]))
	switch {
	case l.Port == 0:
		return l, false, nil
	case proto == TCP && state != diagTcpListen:
		return l, false, nil
	case proto.Datagram() && state != diagTcpClose:
		return l, false, nil
	}
	return l, true, nil
}

// ParsePortRange parses /proc/sys/net/ipv4/ip_local_port_range: "LOW\tHIGH".
func ParsePortRange(b []byte) (lo, hi uint16, err error) {
	var f [2]uint64
	rest := b
	for i := range f {
		tok, r := nextField(rest)
		v, ok := parseUint(tok)
		if !ok || v > 65535 {
			return 0, 0, fmt.Errorf("ip_local_port_range: bad field %q", truncate(tok))
		}
		f[i], rest = v, r
	}
	if tok, _ := nextField(rest); len(tok) > 0 {
		return 0, 0, fmt.Errorf("ip_local_port_range: extra field %q", truncate(tok))
	}
	if f[0] > f[1] {
		return 0, 0, fmt.Errorf("ip_local_port_range: %d > %d", f[0], f[1])
	}
	return uint16(f[0]), uint16(f[1]), nil
}

// nextField returns the first run of non-blank bytes of b and what follows.
func nextField(b []byte) (tok, rest []byte) {
	i := 0
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isBlank(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// ParseSocketLink returns the inode of a /proc/PID/fd link to a socket
// ("socket:[12345]"); ok is false for anything else.
func ParseSocketLink(link []byte) (inode uint64, ok bool) {
	const prefix = "socket:["
	if len(link) < len(prefix)+2 || string(link[:len(prefix)]) != prefix || link[len(link)-1] != ']' {
		return 0, false
	}
	return parseUint(link[len(prefix) : len(link)-1])
}

// Cgroup2Root returns the mount point of the cgroup v2 hierarchy's root
// among mounts: on a unified host /sys/fs/cgroup, on a hybrid one
// /sys/fs/cgroup/unified. A cgroup2 mount of a subdirectory (a bind mount,
// a cgroup namespace) is used only when there is no mount of the root.
func Cgroup2Root(mounts []Mount) (string, bool) {
	sub := ""
	for _, m := range mounts {
		if m.Type != "cgroup2" {
			continue
		}
		if m.Root == "/" {
			return m.Point, true
		}
		if sub == "" {
			sub = m.Point
		}
	}
	return sub, sub != ""
}
