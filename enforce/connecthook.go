package enforce

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/guardd/guardd/platform"
)

// The connect hook refuses connect(2) and sendmsg(2) in the kernel: cgroup
// BPF programs on the connect4, connect6, sendmsg4 and sendmsg6 hooks of
// the cgroup v2 root see every connect() and every unconnected UDP send on
// the host before it happens and make it fail with EPERM when the calling
// process's uid is held to a set whose first matching rule denies the
// destination. Refusals are counted in the kernel, per uid and
// destination, so a spam script trying thousands of times costs one map
// entry, not thousands of records. This file holds the maps' contents as
// pure functions; the programs are in connecthook_linux.go.

// Limits of the kernel maps.
const (
	// MaxConnectRules is the number of rules a set holds.
	MaxConnectRules = 64
	// MaxConnectSets is the number of distinct sets one policy may need.
	MaxConnectSets = 32
	// maxConnectCounts bounds the distinct (uid, destination) refusals
	// held between two reads (an LRU map: the oldest go first).
	maxConnectCounts = 4096
)

// ConnectPolicy is what the connect hook enforces.
type ConnectPolicy struct {
	// MinUID: uids below it (and uid 0) are never refused.
	MinUID uint32
	Sets   []ConnectSet
	UIDs   []BindUIDs // ranges of uids and the set each is held to; uids in none are never refused
}

// ConnectSet is an ordered list of rules: the first that matches a
// destination decides; a destination none matches is allowed.
type ConnectSet struct {
	// Refuse makes a denied connect fail with EPERM; without it the
	// connect goes through and is only counted (monitor mode).
	Refuse bool
	Rules  []ConnectRule
	Tag    any // the caller's: a refusal reports the set it was judged by
}

// ConnectRule allows or denies the destinations in Prefix (the zero
// Prefix: any address, IPv4 and IPv6) on ports PortLo…PortHi.
type ConnectRule struct {
	Deny           bool
	Prefix         netip.Prefix
	PortLo, PortHi uint16
}

// Validate checks that p fits the kernel maps.
func (p *ConnectPolicy) Validate() error {
	if len(p.Sets) > MaxConnectSets {
		return fmt.Errorf("the connect hook holds at most %d distinct sets, this policy needs %d", MaxConnectSets, len(p.Sets))
	}
	for i, s := range p.Sets {
		if len(s.Rules) > MaxConnectRules {
			return fmt.Errorf("set %d has %d rules; the connect hook holds at most %d", i, len(s.Rules), MaxConnectRules)
		}
		for _, r := range s.Rules {
			if r.PortLo > r.PortHi {
				return fmt.Errorf("set %d: empty port range %d-%d", i, r.PortLo, r.PortHi)
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

// uidEntries returns the uids trie the policy needs, for the sets in half.
func (p *ConnectPolicy) uidEntries(half int) map[[8]byte]uint32 {
	out := make(map[[8]byte]uint32)
	for _, u := range p.UIDs {
		for _, px := range uidPrefixes(u.Lo, u.Hi) {
			out[px.key()] = setID(half, u.Set)
		}
	}
	return out
}

// Layout of a set in the kernel's sets map:
//
//	u32 flags              bit 0: refuse (else count only)
//	u32 n                  rules used
//	struct {               MaxConnectRules times
//	        u16 lo, hi     ports, host order
//	        u8  family     0 any address, 4, 6
//	        u8  deny       1 deny, 0 allow
//	        u8  pad[2]
//	        u32 addr[4]    network order, masked; IPv4 in addr[0]
//	        u32 mask[4]
//	} rules[]
const (
	connectRuleSize     = 40
	connectSetValueSize = setHeaderSize + MaxConnectRules*connectRuleSize
)

func encodeConnectSet(s *ConnectSet) []byte {
	b := make([]byte, connectSetValueSize)
	ne := binary.NativeEndian
	if s.Refuse {
		ne.PutUint32(b[0:], setFlagRefuse)
	}
	n := min(len(s.Rules), MaxConnectRules)
	ne.PutUint32(b[4:], uint32(n))
	for i, r := range s.Rules[:n] {
		e := b[setHeaderSize+i*connectRuleSize:]
		ne.PutUint16(e[0:], r.PortLo)
		ne.PutUint16(e[2:], r.PortHi)
		if r.Deny {
			e[5] = 1
		}
		if !r.Prefix.IsValid() {
			continue // family 0: any address
		}
		pf := r.Prefix
		if pf.Addr().Is4In6() && pf.Bits() >= 96 {
			pf = netip.PrefixFrom(pf.Addr().Unmap(), pf.Bits()-96)
		}
		pf = pf.Masked()
		var addr, mask []byte
		if pf.Addr().Is4() {
			e[4] = 4
			a := pf.Addr().As4()
			addr, mask = a[:], make([]byte, 4)
		} else {
			e[4] = 6
			a := pf.Addr().As16()
			addr, mask = a[:], make([]byte, 16)
		}
		for bit := 0; bit < pf.Bits(); bit++ {
			mask[bit/8] |= 0x80 >> (bit % 8)
		}
		copy(e[8:24], addr)
		copy(e[24:40], mask)
	}
	return b
}

// ConnectRefusals is the count of connects (or sends) of one uid to one
// destination that the hook refused, or in monitor mode would have
// refused, since the last read.
type ConnectRefusals struct {
	UID     uint32
	PID     int32         // the process of the first one
	Boot    time.Duration // when the first happened: CLOCK_BOOTTIME
	Addr    netip.Addr
	Port    uint16
	Proto   platform.Proto // TCP or UDP (by socket type)
	Refused bool           // false: monitor mode, they went through
	Count   uint64
	Set     *ConnectSet // the set they were judged by; nil if no longer known

	setID uint32
}

// Where returns "ADDR:PORT/PROTO", as in the audit log.
func (r *ConnectRefusals) Where() string {
	return netip.AddrPortFrom(r.Addr, r.Port).String() + "/" + r.Proto.String()
}

// Layout of the counts map (an LRU hash).
//
//	key (24 bytes):   0 u32 uid   4 u16 port (host order)   6 u8 family (4, 6)
//	                  7 u8 flags (bit 0 refused, bit 1 datagram)   8 u32 addr[4]
//	value (24 bytes): 0 u64 count   8 u64 CLOCK_BOOTTIME ns of the first
//	                  16 u32 pid    20 u32 set id
const (
	connectKeySize   = 24
	connectValueSize = 24
	connFlagRefused  = 1
	connFlagDgram    = 2
)

// parseConnectCount decodes one entry of the counts map.
func parseConnectCount(k, v []byte) (ConnectRefusals, error) {
	var r ConnectRefusals
	if len(k) < connectKeySize || len(v) < connectValueSize {
		return r, fmt.Errorf("connect count of %d+%d bytes, want %d+%d", len(k), len(v), connectKeySize, connectValueSize)
	}
	ne := binary.NativeEndian
	r.UID = ne.Uint32(k[0:])
	r.Port = ne.Uint16(k[4:])
	switch k[6] {
	case 4:
		r.Addr = netip.AddrFrom4([4]byte(k[8:12]))
	case 6:
		r.Addr = netip.AddrFrom16([16]byte(k[8:24]))
	default:
		return r, fmt.Errorf("connect count: address family %d", k[6])
	}
	r.Refused = k[7]&connFlagRefused != 0
	r.Proto = platform.TCP
	if k[7]&connFlagDgram != 0 {
		r.Proto = platform.UDP
	}
	r.Count = ne.Uint64(v[0:])
	boot := ne.Uint64(v[8:])
	if boot > 1<<63-1 {
		return r, fmt.Errorf("connect count: time %d out of range", boot)
	}
	r.Boot = time.Duration(boot)
	pid := ne.Uint32(v[16:])
	if pid > 1<<31-1 {
		return r, fmt.Errorf("connect count: pid %d out of range", pid)
	}
	r.PID = int32(pid)
	r.setID = ne.Uint32(v[20:])
	return r, nil
}

// Totals of the refusals every connect hook of this process handed out
// (TakeCounts), per uid, for user.connect_refusals: whoever drains the
// hook for the audit log, others read the totals and diff them.
var connectTotals struct {
	mu sync.Mutex // guards n
	n  map[uint32]uint64
}

func addConnectTotals(counts []ConnectRefusals) {
	connectTotals.mu.Lock()
	defer connectTotals.mu.Unlock()
	if connectTotals.n == nil {
		connectTotals.n = map[uint32]uint64{}
	}
	for i := range counts {
		connectTotals.n[counts[i].UID] += counts[i].Count
	}
}

// ConnectRefusalTotals fills dst (cleared first) with each uid's refused
// (or, in monitor mode, would-be refused) connects and sends since guardd
// started, as far as the connect hook's counts have been taken.
func ConnectRefusalTotals(dst map[uint32]uint64) {
	clear(dst)
	connectTotals.mu.Lock()
	defer connectTotals.mu.Unlock()
	for uid, n := range connectTotals.n {
		dst[uid] = n
	}
}
