package enforce

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"time"

	"github.com/guardd/guardd/platform"
)

// The bind hook refuses bind(2) in the kernel: a cgroup BPF program on the
// bind4 and bind6 hooks of the cgroup v2 root sees every bind() on the
// host before it happens and makes it fail with EPERM when the calling
// process's uid is held to a set of allowed addresses and ports that does
// not include the one asked for. This file holds what the kernel maps
// contain and how their bytes are laid out, as pure functions; the
// program and its maps are in bindhook_linux.go.

// Limits of the kernel maps.
const (
	// MaxBindAllow is the number of allow entries a set holds (the
	// program checks them in a bounded loop).
	MaxBindAllow = 64
	// MaxBindSets is the number of distinct sets one policy may need.
	MaxBindSets = 32
)

// BindPolicy is what the bind hook enforces.
type BindPolicy struct {
	// MinUID: uids below it (and uid 0) are never refused, whatever UIDs
	// says; the program checks it first.
	MinUID uint32
	Sets   []BindSet
	UIDs   []BindUIDs // ranges of uids and the set each is held to; uids in none are never refused
}

// BindSet is a set of allowed local addresses and ports.
type BindSet struct {
	// Refuse makes a bind outside the set fail with EPERM; without it the
	// bind goes through and is only reported (monitor mode).
	Refuse bool
	// Autobind allows listen() on a socket not bound yet, which the
	// kernel then binds to a port of its ephemeral range: set it when the
	// allow list covers that whole range on any address.
	Autobind bool
	Allow    []BindAllow
	// Tag is the caller's: a refusal reports the set it was judged by.
	Tag any
}

// BindAllow allows binding one address (or any) to a range of ports.
type BindAllow struct {
	Addr           netip.Addr // the zero Addr allows any address, IPv4 and IPv6
	PortLo, PortHi uint16
}

// BindUIDs holds the uids Lo…Hi to Sets[Set].
type BindUIDs struct {
	Lo, Hi uint32
	Set    int
}

// Validate checks that p fits the kernel maps.
func (p *BindPolicy) Validate() error {
	if len(p.Sets) > MaxBindSets {
		return fmt.Errorf("the bind hook holds at most %d distinct allow lists, this policy needs %d", MaxBindSets, len(p.Sets))
	}
	for i, s := range p.Sets {
		if len(s.Allow) > MaxBindAllow {
			return fmt.Errorf("allow list %d has %d entries; the bind hook holds at most %d per account", i, len(s.Allow), MaxBindAllow)
		}
		for _, a := range s.Allow {
			if a.PortLo > a.PortHi {
				return fmt.Errorf("allow list %d: empty port range %d-%d", i, a.PortLo, a.PortHi)
			}
		}
	}
	for _, u := range p.UIDs {
		if u.Lo > u.Hi || u.Set < 0 || u.Set >= len(p.Sets) {
			return fmt.Errorf("uids %d-%d: bad range or set %d", u.Lo, u.Hi, u.Set)
		}
	}
	return nil
}

// Set ids in the kernel: 0 means "not held"; policies alternate between
// two halves of the sets map, so a reload writes the new sets where no uid
// points yet, then moves the uids over.
func setID(half, index int) uint32 { return uint32(1 + half*MaxBindSets + index) }

func splitSetID(id uint32) (half, index int, ok bool) {
	if id == 0 || id > 2*MaxBindSets {
		return 0, 0, false
	}
	return int(id-1) / MaxBindSets, int(id-1) % MaxBindSets, true
}

// Layout of a set in the kernel's sets map (an array of these):
//
//	u32 flags              bit 0: refuse (else report only); bit 1: autobind
//	u32 n                  entries used
//	struct {               MaxBindAllow times
//	        u16 lo, hi     ports, host order
//	        u8  family     0 any address, 4, 6
//	        u8  pad[3]
//	        u32 addr[4]    as the kernel has it in bpf_sock_addr (network order); IPv4 in addr[0]
//	} entries[]
const (
	setFlagRefuse   = 1
	setFlagAutobind = 2
	allowEntrySize  = 24
	setHeaderSize   = 8
	setValueSize    = setHeaderSize + MaxBindAllow*allowEntrySize
)

func encodeSet(s *BindSet) []byte {
	b := make([]byte, setValueSize)
	ne := binary.NativeEndian
	var flags uint32
	if s.Refuse {
		flags |= setFlagRefuse
	}
	if s.Autobind {
		flags |= setFlagAutobind
	}
	ne.PutUint32(b[0:], flags)
	n := min(len(s.Allow), MaxBindAllow)
	ne.PutUint32(b[4:], uint32(n))
	for i, a := range s.Allow[:n] {
		e := b[setHeaderSize+i*allowEntrySize:]
		ne.PutUint16(e[0:], a.PortLo)
		ne.PutUint16(e[2:], a.PortHi)
		switch addr := a.Addr.Unmap(); {
		case !addr.IsValid():
			e[4] = 0
		case addr.Is4():
			e[4] = 4
			a4 := addr.As4()
			copy(e[8:12], a4[:])
		default:
			e[4] = 6
			a16 := addr.As16()
			copy(e[8:24], a16[:])
		}
	}
	return b
}

// uidPrefix is one key of the uids LPM trie: the uids whose top Bits bits
// equal UID's.
type uidPrefix struct {
	Bits uint32
	UID  uint32
}

// uidPrefixes covers lo…hi with the fewest prefixes (at most 62).
func uidPrefixes(lo, hi uint32) []uidPrefix {
	var out []uidPrefix
	cur, end := uint64(lo), uint64(hi)
	for cur <= end {
		size := uint64(1) << 32
		if cur != 0 {
			size = uint64(1) << bits.TrailingZeros64(cur) // the largest block aligned at cur
		}
		for size > end-cur+1 {
			size >>= 1
		}
		out = append(out, uidPrefix{Bits: uint32(32 - bits.TrailingZeros64(size)), UID: uint32(cur)})
		cur += size
	}
	return out
}

// key is the LPM trie key: struct bpf_lpm_trie_key { u32 prefixlen; u8
// data[4] } with the uid in network order, so that the prefix covers its
// high bits.
func (p uidPrefix) key() [8]byte {
	var k [8]byte
	binary.NativeEndian.PutUint32(k[0:], p.Bits)
	binary.BigEndian.PutUint32(k[4:], p.UID)
	return k
}

// uidEntries returns the uids trie the policy needs, for the sets in
// half.
func (p *BindPolicy) uidEntries(half int) map[[8]byte]uint32 {
	out := make(map[[8]byte]uint32)
	for _, u := range p.UIDs {
		for _, px := range uidPrefixes(u.Lo, u.Hi) {
			out[px.key()] = setID(half, u.Set)
		}
	}
	return out
}

// BindRefusal is one bind() or listen() the hook refused, or in monitor
// mode would have refused, as the program reported it through its ring
// buffer. The
// record holds what the program may read without CAP_PERFMON: no command
// name (the caller reads it from /proc while the process is there; Boot
// tells whether the process found is the one).
type BindRefusal struct {
	Time    time.Time     // when guardd read it
	Boot    time.Duration // when it happened: CLOCK_BOOTTIME, the clock of /proc/PID/stat's start time
	UID     uint32        // real uid of the caller
	PID     int32         // its process (thread group) id
	Addr    netip.Addr
	Port    uint16
	Proto   platform.Proto
	Refused bool     // false: monitor mode, the bind went through
	Listen  bool     // refused at listen() (the LSM hook), not at bind(); Port 0: the socket was not bound yet
	Set     *BindSet // the set it was judged by; nil if it belongs to a policy no longer known

	setID uint32
}

// Where returns "ADDR:PORT/PROTO", as in the audit log.
func (r *BindRefusal) Where() string {
	return netip.AddrPortFrom(r.Addr, r.Port).String() + "/" + r.Proto.String()
}

// Layout of a refusal record in the ring buffer (56 bytes, host order
// unless said):
//
//	0  u32 uid          4  u32 pid (tgid)      8  u32 set id
//	12 u16 port         14 u16 family (4, 6)   16 u32 addr[4] (network order; IPv4 in addr[0])
//	32 u64 CLOCK_BOOTTIME ns                   40 u32 socket type
//	44 u32 protocol     48 u32 refused         52 u32 hook (0 bind, 1 listen)
const refusalSize = 56

// Record field 52: which hook refused.
const (
	recHookBind   = 0
	recHookListen = 1
)

// ParseBindRefusal decodes one ring buffer record. It does not resolve the
// set (Set is nil).
func ParseBindRefusal(b []byte) (BindRefusal, error) {
	var r BindRefusal
	if len(b) < refusalSize {
		return r, fmt.Errorf("bind refusal record of %d bytes, want %d", len(b), refusalSize)
	}
	ne := binary.NativeEndian
	r.UID = ne.Uint32(b[0:])
	pid := ne.Uint32(b[4:])
	if pid > 1<<31-1 {
		return r, fmt.Errorf("bind refusal: pid %d out of range", pid)
	}
	r.PID = int32(pid)
	r.setID = ne.Uint32(b[8:])
	r.Port = ne.Uint16(b[12:])
	switch fam := ne.Uint16(b[14:]); fam {
	case 4:
		r.Addr = netip.AddrFrom4([4]byte(b[16:20]))
	case 6:
		r.Addr = netip.AddrFrom16([16]byte(b[16:32]))
	default:
		return r, fmt.Errorf("bind refusal: address family %d", fam)
	}
	boot := ne.Uint64(b[32:])
	if boot > 1<<63-1 {
		return r, fmt.Errorf("bind refusal: time %d out of range", boot)
	}
	r.Boot = time.Duration(boot)
	sockType, proto := ne.Uint32(b[40:]), ne.Uint32(b[44:])
	switch {
	case proto != 0 && proto < 256:
		r.Proto = platform.Proto(proto)
	case sockType == 1: // SOCK_STREAM
		r.Proto = platform.TCP
	case sockType == 2: // SOCK_DGRAM
		r.Proto = platform.UDP
	}
	r.Refused = ne.Uint32(b[48:]) != 0
	r.Listen = ne.Uint32(b[52:]) == recHookListen
	return r, nil
}
