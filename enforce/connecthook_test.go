package enforce

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/guardd/guardd/platform"
)

func TestEncodeConnectSet(t *testing.T) {
	s := &ConnectSet{Refuse: true, Rules: []ConnectRule{
		{Prefix: netip.MustParsePrefix("127.0.0.1/32"), PortHi: 65535},
		{Prefix: netip.MustParsePrefix("::ffff:10.1.2.3/104"), PortLo: 25, PortHi: 25}, // mapped: 10.0.0.0/8
		{Deny: true, Prefix: netip.MustParsePrefix("2001:db8::/33"), PortLo: 465, PortHi: 587},
		{Deny: true, PortLo: 25, PortHi: 25},
	}}
	b := encodeConnectSet(s)
	ne := binary.NativeEndian
	if len(b) != connectSetValueSize || ne.Uint32(b[0:]) != setFlagRefuse || ne.Uint32(b[4:]) != 4 {
		t.Fatalf("header: len %d flags %d n %d", len(b), ne.Uint32(b[0:]), ne.Uint32(b[4:]))
	}
	rule := func(i int) []byte { return b[setHeaderSize+i*connectRuleSize:][:connectRuleSize] }
	for i, want := range []struct {
		lo, hi       uint16
		family, deny byte
		addr, mask   []byte
	}{
		{0, 65535, 4, 0, []byte{127, 0, 0, 1}, []byte{255, 255, 255, 255}},
		{25, 25, 4, 0, []byte{10, 0, 0, 0}, []byte{255, 0, 0, 0}},
		{465, 587, 6, 1, []byte{0x20, 0x01, 0x0d, 0xb8, 0}, []byte{255, 255, 255, 255, 0x80, 0}},
		{25, 25, 0, 1, []byte{0}, []byte{0}},
	} {
		r := rule(i)
		if ne.Uint16(r[0:]) != want.lo || ne.Uint16(r[2:]) != want.hi || r[4] != want.family || r[5] != want.deny {
			t.Errorf("rule %d: %d-%d family %d deny %d", i, ne.Uint16(r[0:]), ne.Uint16(r[2:]), r[4], r[5])
		}
		if string(r[8:8+len(want.addr)]) != string(want.addr) || string(r[24:24+len(want.mask)]) != string(want.mask) {
			t.Errorf("rule %d: addr % x mask % x", i, r[8:24], r[24:40])
		}
	}
	if r := rule(4); string(r) != string(make([]byte, connectRuleSize)) {
		t.Errorf("an unused rule is not zero: % x", r)
	}
}

func TestParseConnectCount(t *testing.T) {
	k := make([]byte, connectKeySize)
	v := make([]byte, connectValueSize)
	ne := binary.NativeEndian
	ne.PutUint32(k[0:], 1234)
	ne.PutUint16(k[4:], 25)
	k[6], k[7] = 4, connFlagRefused|connFlagDgram
	copy(k[8:], []byte{127, 0, 0, 2})
	ne.PutUint64(v[0:], 3000)
	ne.PutUint64(v[8:], 5e9)
	ne.PutUint32(v[16:], 4242)
	ne.PutUint32(v[20:], setID(1, 2))
	r, err := parseConnectCount(k, v)
	if err != nil {
		t.Fatal(err)
	}
	if r.UID != 1234 || r.Port != 25 || r.Addr != netip.MustParseAddr("127.0.0.2") || !r.Refused || r.Proto != platform.UDP ||
		r.Count != 3000 || r.Boot.Seconds() != 5 || r.PID != 4242 || r.setID != setID(1, 2) || r.Where() != "127.0.0.2:25/udp" {
		t.Errorf("parsed %+v", r)
	}
	k[6], k[7] = 6, 0
	copy(k[8:], netip.MustParseAddr("2001:db8::1").AsSlice())
	if r, err := parseConnectCount(k, v); err != nil || r.Addr.String() != "2001:db8::1" || r.Refused || r.Proto != platform.TCP {
		t.Errorf("IPv6: %+v, %v", r, err)
	}
	for _, bad := range []func(){
		func() { k[6] = 5 },
		func() { k[6] = 4; ne.PutUint32(v[16:], 1<<31) },
		func() { ne.PutUint32(v[16:], 1); ne.PutUint64(v[8:], 1<<63) },
	} {
		bad()
		if _, err := parseConnectCount(k, v); err == nil {
			t.Error("a bad record parsed")
		}
	}
	if _, err := parseConnectCount(k[:10], v); err == nil {
		t.Error("a short key parsed")
	}
}

func TestConnectPolicyValidate(t *testing.T) {
	ok := &ConnectPolicy{Sets: []ConnectSet{{Rules: make([]ConnectRule, MaxConnectRules)}}, UIDs: []BindUIDs{{Lo: 1000, Hi: 1999}}}
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
	for _, p := range []*ConnectPolicy{
		{Sets: []ConnectSet{{Rules: make([]ConnectRule, MaxConnectRules+1)}}},
		{Sets: make([]ConnectSet, MaxConnectSets+1)},
		{Sets: []ConnectSet{{Rules: []ConnectRule{{PortLo: 9, PortHi: 8}}}}},
		{Sets: []ConnectSet{{}}, UIDs: []BindUIDs{{Lo: 1000, Hi: 1999, Set: 1}}},
		{Sets: []ConnectSet{{}}, UIDs: []BindUIDs{{Lo: 2000, Hi: 1999}}},
	} {
		if p.Validate() == nil {
			t.Errorf("%+v validated", p)
		}
	}
}
