package enforce

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/guardd/guardd/platform"
)

func TestUIDPrefixes(t *testing.T) {
	for _, tc := range []struct {
		lo, hi uint32
		want   int // prefixes
	}{
		{1000, 1000, 1},
		{0, 4294967295, 1},
		{1000, 59999, 0}, // checked by coverage only
		{4294967295, 4294967295, 1},
		{4294967294, 4294967295, 1},
		{1, 4294967294, 62},
	} {
		got := uidPrefixes(tc.lo, tc.hi)
		if tc.want != 0 && len(got) != tc.want {
			t.Errorf("uidPrefixes(%d, %d) = %d prefixes, want %d", tc.lo, tc.hi, len(got), tc.want)
		}
		checkCover(t, tc.lo, tc.hi, got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		a, b := r.Uint32(), r.Uint32()
		if r.IntN(2) == 0 {
			b = a + r.Uint32N(5000)
			if b < a {
				b = 4294967295
			}
		}
		lo, hi := min(a, b), max(a, b)
		got := uidPrefixes(lo, hi)
		if len(got) > 62 {
			t.Fatalf("uidPrefixes(%d, %d): %d prefixes", lo, hi, len(got))
		}
		checkCover(t, lo, hi, got)
	}
}

// checkCover checks that the prefixes are aligned, disjoint, in order and
// cover exactly lo…hi.
func checkCover(t *testing.T, lo, hi uint32, ps []uidPrefix) {
	t.Helper()
	next := uint64(lo)
	for _, p := range ps {
		if p.Bits > 32 {
			t.Fatalf("%d-%d: prefix /%d", lo, hi, p.Bits)
		}
		size := uint64(1) << (32 - p.Bits)
		if uint64(p.UID)%size != 0 {
			t.Fatalf("%d-%d: %d/%d not aligned", lo, hi, p.UID, p.Bits)
		}
		if uint64(p.UID) != next {
			t.Fatalf("%d-%d: prefix at %d, want %d", lo, hi, p.UID, next)
		}
		next += size
	}
	if next != uint64(hi)+1 {
		t.Fatalf("%d-%d: covered up to %d", lo, hi, next-1)
	}
}

func TestUIDPrefixKey(t *testing.T) {
	k := uidPrefix{Bits: 24, UID: 0x01020300}.key()
	if binary.NativeEndian.Uint32(k[:4]) != 24 || string(k[4:]) != "\x01\x02\x03\x00" {
		t.Errorf("key = %x", k)
	}
}

func TestEncodeSet(t *testing.T) {
	s := BindSet{Refuse: true, Allow: []BindAllow{
		{PortLo: 60000, PortHi: 60099},
		{Addr: netip.MustParseAddr("127.0.0.1"), PortLo: 11211, PortHi: 11211},
		{Addr: netip.MustParseAddr("::1"), PortLo: 6379, PortHi: 6379},
		{Addr: netip.MustParseAddr("::ffff:10.0.0.1"), PortLo: 9000, PortHi: 9000},
	}}
	b := encodeSet(&s)
	ne := binary.NativeEndian
	if len(b) != setValueSize || ne.Uint32(b[0:]) != setFlagRefuse || ne.Uint32(b[4:]) != 4 {
		t.Fatalf("header: len %d flags %d n %d", len(b), ne.Uint32(b[0:]), ne.Uint32(b[4:]))
	}
	entry := func(i int) []byte { return b[setHeaderSize+i*allowEntrySize:][:allowEntrySize] }
	for i, want := range []struct {
		lo, hi uint16
		family byte
		addr   []byte
	}{
		{60000, 60099, 0, make([]byte, 16)},
		{11211, 11211, 4, append([]byte{127, 0, 0, 1}, make([]byte, 12)...)},
		{6379, 6379, 6, append(make([]byte, 15), 1)},
		{9000, 9000, 4, append([]byte{10, 0, 0, 1}, make([]byte, 12)...)}, // mapped: IPv4
	} {
		e := entry(i)
		if ne.Uint16(e[0:]) != want.lo || ne.Uint16(e[2:]) != want.hi || e[4] != want.family || string(e[8:24]) != string(want.addr) {
			t.Errorf("entry %d = %x", i, e)
		}
	}
	if e := entry(4); string(e) != string(make([]byte, allowEntrySize)) {
		t.Errorf("unused entry = %x", e)
	}
	if b := encodeSet(&BindSet{}); binary.NativeEndian.Uint32(b[0:]) != 0 {
		t.Error("a monitor set has the refuse flag")
	}
}

func TestSetIDs(t *testing.T) {
	seen := map[uint32]bool{0: true}
	for half := range 2 {
		for i := range MaxBindSets {
			id := setID(half, i)
			if seen[id] || id > 2*MaxBindSets {
				t.Fatalf("setID(%d, %d) = %d", half, i, id)
			}
			seen[id] = true
			if h, j, ok := splitSetID(id); !ok || h != half || j != i {
				t.Fatalf("splitSetID(%d) = %d %d %v", id, h, j, ok)
			}
		}
	}
	for _, id := range []uint32{0, 2*MaxBindSets + 1, 1 << 31} {
		if _, _, ok := splitSetID(id); ok {
			t.Errorf("splitSetID(%d) ok", id)
		}
	}
}

func TestBindPolicyValidate(t *testing.T) {
	tooMany := make([]BindAllow, MaxBindAllow+1)
	for i := range tooMany {
		tooMany[i] = BindAllow{PortLo: 1, PortHi: 1}
	}
	for _, tc := range []struct {
		p    BindPolicy
		want string
	}{
		{BindPolicy{Sets: []BindSet{{}}, UIDs: []BindUIDs{{Lo: 1000, Hi: 2000}}}, ""},
		{BindPolicy{Sets: make([]BindSet, MaxBindSets+1)}, "distinct allow lists"},
		{BindPolicy{Sets: []BindSet{{Allow: tooMany}}}, "at most 64"},
		{BindPolicy{Sets: []BindSet{{Allow: []BindAllow{{PortLo: 9, PortHi: 8}}}}}, "empty port range"},
		{BindPolicy{Sets: []BindSet{{}}, UIDs: []BindUIDs{{Lo: 5, Hi: 4}}}, "bad range"},
		{BindPolicy{Sets: []BindSet{{}}, UIDs: []BindUIDs{{Lo: 5, Hi: 5, Set: 1}}}, "bad range or set"},
	} {
		err := tc.p.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.p, err, tc.want)
		}
	}
}

// record builds a refusal record as the program writes it.
func record(uid, pid, set uint32, port, family uint16, addr []byte, boot uint64, sockType, proto, refused uint32) []byte {
	b := make([]byte, refusalSize)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uid)
	ne.PutUint32(b[4:], pid)
	ne.PutUint32(b[8:], set)
	ne.PutUint16(b[12:], port)
	ne.PutUint16(b[14:], family)
	copy(b[16:32], addr)
	ne.PutUint64(b[32:], boot)
	ne.PutUint32(b[40:], sockType)
	ne.PutUint32(b[44:], proto)
	ne.PutUint32(b[48:], refused)
	return b
}

func TestParseBindRefusal(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::1").As16()
	for _, tc := range []struct {
		name string
		b    []byte
		want string // Where() uid pid boot refused, or the error
	}{
		{"tcp4", record(1001, 4242, 1, 8080, 4, []byte{0, 0, 0, 0}, 5e9, 1, 6, 1), "0.0.0.0:8080/tcp 1001 4242 5s true"},
		{"udp6", record(1001, 7, 33, 53, 6, v6[:], 1, 2, 17, 0), "[2001:db8::1]:53/udp 1001 7 1ns false"},
		{"no protocol: from the type", record(1001, 7, 1, 25, 4, []byte{127, 0, 0, 1}, 0, 1, 0, 1), "127.0.0.1:25/tcp 1001 7 0s true"},
		{"dgram", record(1001, 7, 1, 25, 4, nil, 0, 2, 0, 1), "0.0.0.0:25/udp 1001 7 0s true"},
		{"unknown protocol", record(1001, 7, 1, 25, 4, nil, 0, 5, 132, 1), "0.0.0.0:25/proto132 1001 7 0s true"},
		{"longer record", append(record(1001, 7, 1, 25, 4, nil, 0, 1, 6, 1), 1, 2, 3), "0.0.0.0:25/tcp 1001 7 0s true"},
		{"short", record(1, 1, 1, 1, 4, nil, 0, 1, 6, 1)[:refusalSize-1], "want 56"},
		{"empty", nil, "want 56"},
		{"bad family", record(1, 1, 1, 1, 10, nil, 0, 1, 6, 1), "address family 10"},
		{"pid overflow", record(1, 1<<31, 1, 1, 4, nil, 0, 1, 6, 1), "pid"},
		{"time overflow", record(1, 1, 1, 1, 4, nil, 1<<63, 1, 6, 1), "time"},
	} {
		r, err := ParseBindRefusal(tc.b)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = fmt.Sprint(r.Where(), " ", r.UID, " ", r.PID, " ", r.Boot, " ", r.Refused)
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	r, _ := ParseBindRefusal(record(1001, 7, 33, 53, 6, v6[:], 0, 2, 17, 0))
	if r.setID != 33 || r.Proto != platform.UDP || r.Set != nil || r.Listen {
		t.Errorf("setID %d proto %v set %v listen %v", r.setID, r.Proto, r.Set, r.Listen)
	}
	// The listen hook's records say so in their last word; port 0 is an
	// unbound socket.
	rec := record(1001, 7, 1, 0, 4, nil, 0, 1, 6, 1)
	binary.NativeEndian.PutUint32(rec[52:], recHookListen)
	if r, err := ParseBindRefusal(rec); err != nil || !r.Listen || r.Port != 0 || r.Proto != platform.TCP {
		t.Errorf("listen record: %+v %v", r, err)
	}
}

// TestEncodeSetAutobind: the flags word carries refuse and autobind.
func TestEncodeSetAutobind(t *testing.T) {
	for _, tc := range []struct {
		s    BindSet
		want uint32
	}{{BindSet{}, 0}, {BindSet{Refuse: true}, 1}, {BindSet{Autobind: true}, 2}, {BindSet{Refuse: true, Autobind: true}, 3}} {
		if got := binary.NativeEndian.Uint32(encodeSet(&tc.s)); got != tc.want {
			t.Errorf("%+v: flags %d, want %d", tc.s, got, tc.want)
		}
	}
}

// FuzzParseBindRefusal: any bytes as a ring buffer record. It never panics,
// and a record that parses has a valid address of its family and no
// negative pid or time.
func FuzzParseBindRefusal(f *testing.F) {
	f.Add(record(1001, 4242, 1, 8080, 4, []byte{0, 0, 0, 0}, 5e9, 1, 6, 1))
	f.Add(record(1001, 7, 33, 53, 6, make([]byte, 16), 1, 2, 17, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseBindRefusal(b)
		if err != nil {
			return
		}
		if !r.Addr.IsValid() || r.PID < 0 || r.Boot < 0 {
			t.Fatalf("%x: %+v", b, r)
		}
		if fam := binary.NativeEndian.Uint16(b[14:]); (fam == 4) != r.Addr.Is4() {
			t.Fatalf("%x: family %d, address %v", b, fam, r.Addr)
		}
	})
}
