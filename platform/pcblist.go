package platform

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// FreeBSD lists sockets through the net.inet.tcp.pcblist and
// net.inet.udp.pcblist sysctls (what netstat(1) and sockstat(1) read): a
// struct xinpgen, one record per protocol control block, and a closing
// struct xinpgen. A TCP record is a struct xtcpcb, which starts with its
// length and a struct xinpcb; a UDP record is a struct xinpcb. Each of
// these structs (and the struct xsocket inside xinpcb) starts with its
// own length, and the decoder checks every one: a length it does not
// know is an unknown layout and refused. Sockets are matched to the
// processes holding them through kern.file (struct xfile), whose xf_data
// is the kernel address of the socket, as xso_so in xsocket: sockstat(1)
// joins the two the same way. guardd uses that address as the
// Listener's Inode on FreeBSD.
//
// Layouts (FreeBSD 12 made these structs fixed-size and independent of
// the kernel's own, with spare fields for growth; FreeBSD 13 and 14 on
// amd64 and arm64 share them; ksize_t and kvaddr_t are uint64):
//
//	struct xinpgen (netinet/in_pcb.h), 64 bytes:
//	  xig_len ksize_t 0, xig_count u_int 8, xig_gen inp_gen_t 16
//	struct xsocket (sys/socketvar.h), 240 bytes:
//	  xso_len 0, xso_so 8 (kvaddr of the socket), so_pcb 16,
//	  so_uid uid_t 120, so_options int16 158
//	struct xinpcb (netinet/in_pcb.h), 400 bytes:
//	  xi_len 0, xi_socket 8 (struct xsocket), inp_inc 248 (struct
//	  in_conninfo: inc_ie at +4 holds ie_fport 252, ie_lport 254 in
//	  network order, the foreign address 256 and the local address 272,
//	  16 bytes each, an IPv4 address in the last 4), inp_vflag 392
//	struct xtcpcb (netinet/tcp_var.h): xt_len 0, xt_inp 8 (struct
//	  xinpcb), then TCP state guardd does not read (its size is not
//	  the same in every release; the decoder steps by xt_len and checks only that it
//	  holds an xinpcb)
//	struct xfile (sys/file.h), 128 bytes:
//	  xf_size 0, xf_pid 8, xf_uid 12, xf_fd 16, xf_type short 32,
//	  xf_data kvaddr 56
const (
	XinpgenSize = 64
	XsocketSize = 240
	XinpcbSize  = 400
	XfileSize   = 128

	xigCount = 8
	xigGen   = 16

	xiSocket   = 8
	xsoSo      = 8
	xsoOptions = 158
	xsoUID     = 120
	xiFport    = 252
	xiLport    = 254
	xiFaddr    = 256
	xiLaddr    = 272
	xiVflag    = 392

	xfPID  = 8
	xfUID  = 12
	xfFD   = 16
	xfType = 32
	xfData = 56

	bsdSOAcceptConn = 0x0002 // SO_ACCEPTCONN: listen(2) was called
	bsdINPIPv4      = 0x1    // INP_IPV4
	bsdINPIPv6      = 0x2    // INP_IPV6
	bsdDTypeSocket  = 2      // DTYPE_SOCKET
)

// PcbList is what a pcblist dump holds besides its sockets.
type PcbList struct {
	Count   uint32 // xig_count of the opening xinpgen
	Records int    // records decoded
	// Changed reports that the generation count differs between the
	// opening and the closing xinpgen: sockets came or went while the
	// kernel copied the list, which may then miss or repeat one.
	Changed bool
}

// ParsePcblist decodes a net.inet.{tcp,udp}.pcblist dump of proto and
// calls fn for each listener in it: a TCP socket in listen(2), or a UDP
// socket bound to a local port and not connected. Malformed input is an
// error, never a panic.
func ParsePcblist(b []byte, proto Proto, fn func(Listener)) (PcbList, error) {
	var pl PcbList
	le := binary.LittleEndian
	if len(b) < XinpgenSize {
		return pl, fmt.Errorf("pcblist: %d bytes, shorter than its xinpgen", len(b))
	}
	if n := le.Uint64(b); n != XinpgenSize {
		return pl, fmt.Errorf("pcblist: xig_len %d: unknown layout (guardd knows %d)", n, XinpgenSize)
	}
	pl.Count = le.Uint32(b[xigCount:])
	gen := le.Uint64(b[xigGen:])
	rest := b[XinpgenSize:]
	for {
		if len(rest) < 8 {
			return pl, fmt.Errorf("pcblist: %d trailing bytes after %d records, no closing xinpgen", len(rest), pl.Records)
		}
		n := le.Uint64(rest)
		if n == XinpgenSize && len(rest) == XinpgenSize {
			pl.Changed = le.Uint64(rest[xigGen:]) != gen
			return pl, nil
		}
		if n > uint64(len(rest)) {
			return pl, fmt.Errorf("pcblist: record %d claims %d bytes, %d left", pl.Records, n, len(rest))
		}
		rec := rest[:n]
		inp := rec
		switch proto {
		case TCP:
			// struct xtcpcb: xt_len, then the xinpcb (8-aligned).
			if n < 8+XinpcbSize || n%8 != 0 {
				return pl, fmt.Errorf("pcblist: xt_len %d: unknown layout (an xtcpcb holds an xinpcb of %d bytes)", n, XinpcbSize)
			}
			inp = rec[8 : 8+XinpcbSize]
		case UDP, UDPLite: // UDP-Lite's pcblist is UDP's layout
			if n != XinpcbSize {
				return pl, fmt.Errorf("pcblist: xi_len %d: unknown layout (guardd knows %d)", n, XinpcbSize)
			}
		default:
			return pl, fmt.Errorf("pcblist: protocol %s", proto)
		}
		l, ok, err := decodeXinpcb(inp, proto)
		if err != nil {
			return pl, fmt.Errorf("pcblist: record %d: %w", pl.Records, err)
		}
		if ok {
			fn(l)
		}
		pl.Records++
		rest = rest[n:]
	}
}

// decodeXinpcb decodes one struct xinpcb; ok is false for a socket that
// does not listen.
func decodeXinpcb(inp []byte, proto Proto) (l Listener, ok bool, err error) {
	le := binary.LittleEndian
	if n := le.Uint64(inp); n != XinpcbSize {
		return l, false, fmt.Errorf("xi_len %d: unknown layout (guardd knows %d)", n, XinpcbSize)
	}
	so := inp[xiSocket : xiSocket+XsocketSize]
	if n := le.Uint64(so); n != XsocketSize {
		return l, false, fmt.Errorf("xso_len %d: unknown layout (guardd knows %d)", n, XsocketSize)
	}
	l.Proto = proto
	l.Inode = le.Uint64(so[xsoSo:])
	l.UID = le.Uint32(so[xsoUID:])
	l.Port = binary.BigEndian.Uint16(inp[xiLport:])
	fport := binary.BigEndian.Uint16(inp[xiFport:])
	vflag := inp[xiVflag]
	// inp_vflag, not xso_family, says which address is in use: an
	// AF_INET6 socket connected to an IPv4-mapped address switches to
	// INP_IPV4 (tcp6_connect); a dual-stack one bound to :: has both.
	switch {
	case vflag&bsdINPIPv6 != 0:
		l.Addr = netip.AddrFrom16([16]byte(inp[xiLaddr : xiLaddr+16]))
	case vflag&bsdINPIPv4 != 0:
		l.Addr = netip.AddrFrom4([4]byte(inp[xiLaddr+12 : xiLaddr+16]))
	default:
		return l, false, nil // no address family yet: bound to nothing
	}
	switch {
	case l.Port == 0:
		return l, false, nil
	case proto == TCP:
		return l, int16(le.Uint16(so[xsoOptions:]))&bsdSOAcceptConn != 0, nil
	default: // UDP, UDP-Lite: bound, not connected
		return l, fport == 0, nil
	}
}

// XfileSocket is a descriptor on a socket, from kern.file.
type XfileSocket struct {
	PID    int32
	UID    uint32 // effective uid of the process
	FD     int32
	Socket uint64 // kernel address of the socket: Listener.Inode on FreeBSD
}

// ParseXfiles decodes kern.file, an array of struct xfile, and calls fn
// for each descriptor on a socket. Every record must be XfileSize bytes.
func ParseXfiles(b []byte, fn func(XfileSocket)) error {
	le := binary.LittleEndian
	for i := 0; len(b) > 0; i++ {
		if len(b) < 8 {
			return fmt.Errorf("kern.file: %d trailing bytes", len(b))
		}
		if n := le.Uint64(b); n != XfileSize {
			return fmt.Errorf("kern.file: record %d: xf_size %d: unknown layout (guardd knows %d)", i, n, XfileSize)
		}
		if len(b) < XfileSize {
			return fmt.Errorf("kern.file: record %d truncated (%d of %d bytes)", i, len(b), XfileSize)
		}
		if int16(le.Uint16(b[xfType:])) == bsdDTypeSocket {
			if data := le.Uint64(b[xfData:]); data != 0 {
				fn(XfileSocket{
					PID: int32(le.Uint32(b[xfPID:])), UID: le.Uint32(b[xfUID:]),
					FD: int32(le.Uint32(b[xfFD:])), Socket: data,
				})
			}
		}
		b = b[XfileSize:]
	}
	return nil
}
