package outbound_test

// These tests read the default policy and policies with rules, which need
// the whole language: the test binary imports the registry (an external
// test package may; outbound cannot).
import (
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	_ "github.com/guardd/guardd/capability/all"
	"github.com/guardd/guardd/capability/outbound"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/policy/policytest"
)

func TestParseConnectPattern(t *testing.T) {
	for _, tc := range []struct {
		in     string
		prefix string // "" = any
		lo, hi uint16
		err    string
	}{
		{in: "*:25", lo: 25, hi: 25},
		{in: "*:*", lo: 0, hi: 65535},
		{in: "127.0.0.1:*", prefix: "127.0.0.1/32", lo: 0, hi: 65535},
		{in: "10.1.2.3/8:25", prefix: "10.0.0.0/8", lo: 25, hi: 25}, // masked
		{in: "[::1]:*", prefix: "::1/128", lo: 0, hi: 65535},
		{in: "[2001:db8::/32]:465-587", prefix: "2001:db8::/32", lo: 465, hi: 587},
		{in: "[::ffff:10.0.0.1]:25", prefix: "10.0.0.1/32", lo: 25, hi: 25},
		{in: "[::ffff:10.0.0.0/104]:25", prefix: "10.0.0.0/8", lo: 25, hi: 25},
		{in: "[::ffff:0:0/80]:25", err: "at least 96 bits"},
		{in: "25", err: "has no port"},
		{in: "*:0", err: "is not a port"},
		{in: "*:587-465", err: "empty"},
		{in: "mx.example.com:25", err: "the address must be"},
		{in: "10.0.0.0/33:25", err: "the address must be"},
		{in: "[10.0.0.1]:25", err: "not an IPv6"},
		{in: "[fe80::1%eth0]:25", err: "not an IPv6"},
	} {
		p, err := outbound.ParseConnectPattern(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseConnectPattern(%q) = %+v, %v; want error containing %q", tc.in, p, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseConnectPattern(%q): %v", tc.in, err)
			continue
		}
		prefix := ""
		if p.Prefix.IsValid() {
			prefix = p.Prefix.String()
		}
		if prefix != tc.prefix || p.PortLo != tc.lo || p.PortHi != tc.hi {
			t.Errorf("ParseConnectPattern(%q) = %s %d-%d, want %s %d-%d", tc.in, prefix, p.PortLo, p.PortHi, tc.prefix, tc.lo, tc.hi)
		}
	}
}

func TestConnectRefuses(t *testing.T) {
	p := mustLoadDefault(t)
	c := outbound.ConnectFor(p, 1500, "", nil)
	if c == nil || c.Name != "customers" || c.Mode != policy.ModeMonitor {
		t.Fatalf("the default policy's connect block for uid 1500 = %+v", c)
	}
	if outbound.ConnectFor(p, 0, "root", nil) != nil || outbound.ConnectFor(p, 100, "", nil) != nil {
		t.Error("root or a system uid is governed by a connect block")
	}
	for _, tc := range []struct {
		dst  string
		want bool
	}{
		{"198.51.100.7:25", true},
		{"198.51.100.7:465", true},
		{"[2001:db8::1]:587", true},
		{"[::ffff:198.51.100.7]:25", true}, // mapped: IPv4
		{"127.0.0.1:25", false},            // the local MTA
		{"127.0.0.2:25", false},
		{"[::ffff:127.0.0.1]:25", false},
		{"[::1]:587", false},
		{"198.51.100.7:443", false}, // not denied
		{"198.51.100.7:24", false},
	} {
		ap := netip.MustParseAddrPort(tc.dst)
		if got := c.Refuses(ap.Addr(), ap.Port()); got != tc.want {
			t.Errorf("Refuses(%s) = %v, want %v", tc.dst, got, tc.want)
		}
	}
}

func mustLoadDefault(t *testing.T) *policy.Policy {
	t.Helper()
	p, diags := policy.Default()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

func TestConnectSpans(t *testing.T) {
	p, diags := policy.Load(filepath.Join("testdata/valid", "connect.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(outbound.Connects(p)) != 2 {
		t.Fatalf("%d connect blocks, want 2", len(outbound.Connects(p)))
	}
	r := outbound.Connects(p)[0]
	if r.Mode != policy.ModeEnforce || !r.ModeSet || !strings.HasSuffix(r.At(), "connect.hcl:6") {
		t.Errorf("resellers block: mode %q set %v at %s", r.Mode, r.ModeSet, r.At())
	}
	if r.Refuses(netip.MustParseAddr("10.9.9.9"), 25) || !r.Refuses(netip.MustParseAddr("11.0.0.1"), 25) ||
		r.Refuses(netip.MustParseAddr("2001:db8::5"), 25) || !r.Refuses(netip.MustParseAddr("2001:db9::5"), 25) {
		t.Error("the resellers block's CIDR exceptions do not work")
	}
	// The first block naming a uid governs it: resellers 2000-2999, the
	// customers block the rest of 1000-59999 but the protected 5000.
	var got []string
	for _, s := range outbound.ConnectSpans(p, nil) {
		got = append(got, s.Connect.Name+":"+itoa(s.Lo)+"-"+itoa(s.Hi))
	}
	want := "resellers:2000-2999 customers:1000-1999 customers:3000-4999 customers:5001-59999"
	if strings.Join(got, " ") != want {
		t.Errorf("ConnectSpans = %v, want %s", got, want)
	}
	if c := outbound.ConnectFor(p, 2500, "", nil); c == nil || c.Name != "resellers" {
		t.Errorf("ConnectFor(2500) = %v", c)
	}
	if c := outbound.ConnectFor(p, 5000, "", nil); c != nil {
		t.Errorf("a protected uid is governed by connect %q", c.Name)
	}
}

func itoa(u uint32) string { return strconv.FormatUint(uint64(u), 10) }

// TestConnectInvalid: each mistake in a connect block is reported, at its
// line, with the language's words.
func TestConnectInvalid(t *testing.T) {
	policytest.CheckInvalid(t, filepath.Join("testdata/invalid", "connect.hcl"))
}

// FuzzParseConnectPattern: any text parses or fails without a panic; what
// parses matches its own address and port range and nothing outside it.
func FuzzParseConnectPattern(f *testing.F) {
	for _, s := range []string{"*:25", "*:*", "10.0.0.0/8:465-587", "[::1]:*", "[::ffff:10.0.0.0/104]:25", "[fe80::1%eth0]:1", "::1:80", ":", "*:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := outbound.ParseConnectPattern(s)
		if err != nil {
			return
		}
		if p.PortLo > p.PortHi {
			t.Fatalf("%q: ports %d-%d", s, p.PortLo, p.PortHi)
		}
		addr := netip.MustParseAddr("198.51.100.1")
		if p.Prefix.IsValid() {
			addr = p.Prefix.Addr()
		}
		if !p.Matches(addr, p.PortLo) || !p.Matches(addr, p.PortHi) {
			t.Fatalf("%q does not match %s:%d-%d", s, addr, p.PortLo, p.PortHi)
		}
		if p.PortHi < 65535 && p.Matches(addr, p.PortHi+1) {
			t.Fatalf("%q matches port %d", s, p.PortHi+1)
		}
	})
}
