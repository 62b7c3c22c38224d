package listeners_test

// These tests parse policies with the language's other blocks and
// variables: the test binary imports the registry (an external test
// package may; listeners cannot).
import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/guardd/guardd/capability/all"
	"github.com/guardd/guardd/capability/listeners"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/policy/policytest"
)

func parse(t *testing.T, src string) *policy.Policy {
	t.Helper()
	p, diags := policy.Parse(map[string][]byte{"test.hcl": []byte(src)})
	if diags.HasErrors() || p == nil {
		t.Fatalf("Parse: %s\n%s", diags.Error(), src)
	}
	return p
}

// TestListenInvalid: each mistake in a listen block is reported, at its
// line, with the language's words.
func TestListenInvalid(t *testing.T) {
	policytest.CheckInvalid(t, filepath.Join("testdata/invalid", "listen.hcl"))
}

func TestParseListenPattern(t *testing.T) {
	for _, tc := range []struct {
		in     string
		addr   string // "" = any
		lo, hi uint16
		err    string
	}{
		{in: "*:8080", lo: 8080, hi: 8080},
		{in: "*:60000-60099", lo: 60000, hi: 60099},
		{in: "*:1-65535", lo: 1, hi: 65535},
		{in: "127.0.0.1:11211", addr: "127.0.0.1", lo: 11211, hi: 11211},
		{in: "0.0.0.0:80", addr: "0.0.0.0", lo: 80, hi: 80},
		{in: "[::1]:6379", addr: "::1", lo: 6379, hi: 6379},
		{in: "[::]:53", addr: "::", lo: 53, hi: 53},
		{in: "[::ffff:10.0.0.1]:9000", addr: "10.0.0.1", lo: 9000, hi: 9000}, // mapped means IPv4
		{in: "* : 80", err: "the address must be"},
		{in: "*: 80", lo: 80, hi: 80}, // spaces around numbers are forgiven, as in uid ranges
		{in: "8080", err: "has no port"},
		{in: "*:", err: "is not a port"},
		{in: "*:0", err: "is not a port"},
		{in: "*:65536", err: "is not a port"},
		{in: "*:-5", err: "is not a port"},
		{in: "*:80-", err: "is not a port"},
		{in: "*:9000-8000", err: "empty"},
		{in: "*:1-2-3", err: "is not a port"},
		{in: "localhost:80", err: "the address must be"},
		{in: "::1:80", err: "the address must be"},
		{in: "[127.0.0.1]:80", err: "not an IPv6 address"},
		{in: "[fe80::1%eth0]:80", err: "zones"},
		{in: "[::1:80", err: "the address must be"},
		{in: "\x00:80", err: "the address must be"},
	} {
		p, err := listeners.ParseListenPattern(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("listeners.ParseListenPattern(%q) = %+v, %v; want error containing %q", tc.in, p, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("listeners.ParseListenPattern(%q): %v", tc.in, err)
			continue
		}
		addr := ""
		if p.Addr.IsValid() {
			addr = p.Addr.String()
		}
		if addr != tc.addr || p.PortLo != tc.lo || p.PortHi != tc.hi || p.Text != tc.in {
			t.Errorf("listeners.ParseListenPattern(%q) = %q %d-%d text %q, want %q %d-%d", tc.in, addr, p.PortLo, p.PortHi, p.Text, tc.addr, tc.lo, tc.hi)
		}
	}
}

func TestListenPatternMatches(t *testing.T) {
	must := func(s string) listeners.ListenPattern {
		p, err := listeners.ParseListenPattern(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		pattern, addr string
		port          uint16
		want          bool
	}{
		{"*:8080", "0.0.0.0", 8080, true},
		{"*:8080", "::", 8080, true},
		{"*:8080", "127.0.0.1", 8081, false},
		{"*:60000-60099", "10.1.2.3", 60000, true},
		{"*:60000-60099", "10.1.2.3", 60099, true},
		{"*:60000-60099", "10.1.2.3", 60100, false},
		{"*:60000-60099", "10.1.2.3", 59999, false},
		{"127.0.0.1:11211", "127.0.0.1", 11211, true},
		{"127.0.0.1:11211", "0.0.0.0", 11211, false}, // all interfaces is not loopback
		{"127.0.0.1:11211", "::ffff:127.0.0.1", 11211, true},
		{"127.0.0.1:11211", "::1", 11211, false},
		{"[::1]:6379", "::1", 6379, true},
		{"[::1]:6379", "127.0.0.1", 6379, false},
		{"0.0.0.0:80", "::", 80, false}, // the IPv6 wildcard is another address
	} {
		p := must(tc.pattern)
		if got := p.Matches(netip.MustParseAddr(tc.addr), tc.port); got != tc.want {
			t.Errorf("%s matches %s:%d = %v, want %v", tc.pattern, tc.addr, tc.port, got, tc.want)
		}
	}
}

func TestListenDetails(t *testing.T) {
	p, diags := policy.Load(filepath.Join("testdata/valid", "listen.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if p.BPFPinDir != "/sys/fs/bpf/guardd" {
		t.Errorf("bpf_pin_dir = %q", p.BPFPinDir)
	}
	if len(listeners.Listens(p)) != 3 {
		t.Fatalf("%d listen blocks, want 3", len(listeners.Listens(p)))
	}
	c, r, closed := listeners.Listens(p)[0], listeners.Listens(p)[1], listeners.Listens(p)[2]
	var allow []string
	for _, a := range c.Allow {
		allow = append(allow, fmt.Sprintf("%s=%v:%d-%d", a.Text, a.Addr, a.PortLo, a.PortHi))
	}
	if got := strings.Join(allow, " "); got != "127.0.0.1:11211=127.0.0.1:11211-11211 *:60000-60099=invalid IP:60000-60099 [::1]:6379=::1:6379-6379 [::ffff:10.0.0.1]:9000=10.0.0.1:9000-9000" {
		t.Errorf("customers allow = %s", got)
	}
	if c.Class != p.Class("customers") || c.Block != listeners.BlockBind || c.Mode != policy.ModeEnforce {
		t.Errorf("customers: class %v block %q mode %q", c.Class, c.Block, c.Mode)
	}
	// No mode: the policy's (monitor); no block: bind; no allow: nothing.
	if r.Class != p.Class("resellers") || r.Block != listeners.BlockKill || r.Mode != policy.ModeMonitor {
		t.Errorf("resellers: class %v block %q mode %q", r.Class, r.Block, r.Mode)
	}
	if closed.Block != listeners.BlockBind || len(closed.Allow) != 0 || closed.Mode != policy.ModeMonitor {
		t.Errorf("closed: block %q allow %v mode %q", closed.Block, closed.Allow, closed.Mode)
	}
	if !strings.HasSuffix(c.At(), "listen.hcl:11") {
		t.Errorf("At() = %q, want …listen.hcl:11", c.At())
	}
	if got := p.RulesReading("proc.listen_ports"); len(got) != 1 || got[0].Name != "irc-bot" {
		t.Errorf("RulesReading(proc.listen_ports) = %v", got)
	}
	if got := p.RulesReading("user.listeners"); len(got) != 1 || got[0].Name != "many-listeners" {
		t.Errorf("RulesReading(user.listeners) = %v", got)
	}

	// shop1 is in both classes: either block's patterns allow it.
	ls := listeners.ListensFor(p, 2000, "shop1", nil)
	if len(ls) != 3 {
		t.Fatalf("ListensFor(shop1) = %d blocks, want 3", len(ls))
	}
	a := netip.MustParseAddr("0.0.0.0")
	if !listeners.ListenAllowed(ls, a, 8080) || !listeners.ListenAllowed(ls, a, 60001) || listeners.ListenAllowed(ls, a, 8081) {
		t.Error("union of the blocks wrong for shop1")
	}
	if ls := listeners.ListensFor(p, 2001, "bob", nil); listeners.ListenAllowed(ls, a, 8080) || len(ls) != 2 {
		t.Errorf("a plain customer may listen on 8080 (%d blocks)", len(ls))
	}
	if ls := listeners.ListensFor(p, 0, "root", nil); ls != nil {
		t.Error("root is governed by a listen block")
	}
	if ls := listeners.ListensFor(p, 999, "daemon", nil); ls != nil {
		t.Error("a system uid is governed by a listen block")
	}
}

// fakeIndex is an AccountIndex over a fixed table.
type fakeIndex struct {
	users  map[string]uint32
	groups map[string][]uint32
}

func (f fakeIndex) UID(name string) (uint32, bool) { u, ok := f.users[name]; return u, ok }

func (f fakeIndex) GroupMembers(g string) []uint32 { return f.groups[g] }

func TestListenSpans(t *testing.T) {
	p := parse(t, `
guardd { min_uid = 1000 }
class "customers" { uids = ["0-59999"] }
class "shops" {
  users  = ["shop1", "ghost"]
  groups = ["shops"]
}
class "high" { uids = ["4294967000-4294967295"] }
protect {
  uids  = ["5000-5099"]
  users = ["www"]
}
listen "customers" { class = "customers" }
listen "shops" {
  class = "shops"
  allow = ["*:8080"]
}
listen "high" { class = "high" }
rule "r" {
  class = "customers"
  when  = user.listeners > 0
  report {}
}
`)
	idx := fakeIndex{
		users:  map[string]uint32{"shop1": 2000, "www": 33000, "shop2": 70000},
		groups: map[string][]uint32{"shops": {2001, 2002, 70000}},
	}
	var got []string
	for _, s := range listeners.ListenSpans(p, idx) {
		var names []string
		for _, l := range s.Listens {
			names = append(names, l.Name)
		}
		got = append(got, fmt.Sprintf("%d-%d:%s", s.Lo, s.Hi, strings.Join(names, "+")))
	}
	want := []string{
		"1000-1999:customers", // 0-999: uid 0 and system uids
		"2000-2002:customers+shops",
		"2003-4999:customers",
		"5100-32999:customers",  // 5000-5099 protected
		"33001-59999:customers", // www protected
		"70000-70000:shops",
		"4294967000-4294967295:high", // the top of the uid space, without overflow
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ListenSpans =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if spans := listeners.ListenSpans(parse(t, "class \"c\" { uids = [\"1000\"] }\nrule \"r\" {\n  class = \"c\"\n  when = proc.pid > 0\n  report {}\n}\n"), idx); spans != nil {
		t.Errorf("no listen blocks, spans %v", spans)
	}
}

// FuzzParseListenPattern: any string as an allow pattern. It never panics,
// and a pattern that parses describes a non-empty port range that matches
// its own bounds and formats back to what it parsed.
func FuzzParseListenPattern(f *testing.F) {
	for _, s := range []string{"*:8080", "127.0.0.1:11211", "[::1]:6379", "*:60000-60099", "[::ffff:1.2.3.4]:1", "*:0", "8080", "[", "]:", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := listeners.ParseListenPattern(s)
		if err != nil {
			return
		}
		if p.PortLo == 0 || p.PortHi < p.PortLo {
			t.Fatalf("%q: ports %d-%d", s, p.PortLo, p.PortHi)
		}
		addr := p.Addr
		if !addr.IsValid() {
			addr = netip.MustParseAddr("192.0.2.1")
		}
		if !p.Matches(addr, p.PortLo) || !p.Matches(addr, p.PortHi) {
			t.Fatalf("%q does not match its own bounds", s)
		}
		if p.PortLo > 1 && p.Matches(addr, p.PortLo-1) {
			t.Fatalf("%q matches below its range", s)
		}
		if p.Addr.IsValid() && p.Addr.Is4In6() {
			t.Fatalf("%q kept a mapped address", s)
		}
	})
}

// TestListenRule: every listen block with a class gets its own rule,
// listen:NAME, a process rule of the block's class and mode that kills
// with SIGKILL where the process holds listeners that this block (and no
// other governing its user) acts on; its key follows the block's allow
// list and mode, so an edited block judges afresh.
func TestListenRule(t *testing.T) {
	src := `
class "web" { uids = ["1000-1999"] }
class "shops" { uids = ["1500-2999"] }
listen "web" {
  class = "web"
  allow = ["*:8080"]
}
listen "shops" {
  class = "shops"
  allow = ["*:9000"]
  block = "kill"
  mode  = "monitor"
}
`
	p := parse(t, src)
	web, shops := p.Rule(listeners.ListenRulePrefix+"web"), p.Rule(listeners.ListenRulePrefix+"shops")
	if web == nil || shops == nil {
		t.Fatalf("rules %v", p.Rules)
	}
	if web.Scope != policy.ScopeProcess || web.Class != p.Class("web") || web.Mode != policy.ModeEnforce || shops.Mode != policy.ModeMonitor ||
		len(web.Steps) != 1 || web.Steps[0].Kind != policy.StepKill || web.Steps[0].Signal != "KILL" || web.Steps[0].Grace != 0 ||
		web.At() != listeners.Listens(p)[0].At() || web.Index != len(p.Rules)-2 {
		t.Errorf("rule of listen web: %+v", web)
	}
	proc := &platform.Process{UID: 1500}
	env := &policy.Env{Proc: proc, User: &platform.UserStats{UID: 1500}, Host: &platform.Host{}}
	for _, tc := range []struct {
		n        int
		block    string
		web, shp bool
	}{
		{0, "", false, false},
		{0, "web", false, false}, // a stale name without a listener
		{2, "web", true, false},
		{1, "shops", false, true},
	} {
		proc.ForbiddenListens, proc.ForbiddenListenBlock = tc.n, tc.block
		if got := web.When.Eval(env); got != tc.web {
			t.Errorf("%d forbidden, block %q: listen:web holds %v", tc.n, tc.block, got)
		}
		if got := shops.When.Eval(env); got != tc.shp {
			t.Errorf("%d forbidden, block %q: listen:shops holds %v", tc.n, tc.block, got)
		}
	}
	if again := parse(t, src).Rule(listeners.ListenRulePrefix + "web"); again.Key != web.Key {
		t.Errorf("the same block, another key: %s, %s", web.Key, again.Key)
	}
	for _, edit := range []string{`allow = ["*:8081"]`, `allow = ["*:8080"]` + "\n  mode = \"monitor\""} {
		k := parse(t, strings.Replace(src, `allow = ["*:8080"]`, edit, 1)).Rule(listeners.ListenRulePrefix + "web").Key
		if k == web.Key {
			t.Errorf("%s: the key stayed %s", edit, k)
		}
	}
}
