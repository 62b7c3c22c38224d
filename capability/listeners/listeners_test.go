package listeners

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/capability/internal/socketrules/sockettest"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// testListenGuard returns a listenGuard over account files of its own.
func testListenGuard(t *testing.T, mode string) *listenGuard {
	t.Helper()
	return &listenGuard{h: sockettest.NewHost(t, mode)}
}

// describe renders a BindPolicy as "LO-HI:refuse/monitor[allow...](tags)".
func describe(bp *enforce.BindPolicy) string {
	var out []string
	for _, u := range bp.UIDs {
		s := bp.Sets[u.Set]
		verdict := "monitor"
		if s.Refuse {
			verdict = "refuse"
		}
		var allow []string
		for _, a := range s.Allow {
			addr := "*"
			if a.Addr.IsValid() {
				addr = a.Addr.String()
			}
			allow = append(allow, fmt.Sprintf("%s:%d-%d", addr, a.PortLo, a.PortHi))
		}
		var tags []string
		for _, l := range s.Tag.([]*Listen) {
			tags = append(tags, l.Name)
		}
		out = append(out, fmt.Sprintf("%d-%d:%s[%s](%s)", u.Lo, u.Hi, verdict, strings.Join(allow, " "), strings.Join(tags, ",")))
	}
	return strings.Join(out, " ")
}

const listenPolicy = `
class "customers" { uids = ["1000-59999"] }
class "shops" {
  users  = ["shop1"]
  groups = ["shops"]
}
class "trial" { uids = ["60000-60009"] }
listen "customers" {
  class = "customers"
  allow = ["127.0.0.1:11211"]
}
listen "shops" {
  class = "shops"
  allow = ["*:8080"]
  block = "kill"
}
listen "trial" {
  class = "trial"
  mode  = "monitor"
}
rule "r" {
  class = "customers"
  when  = user.listeners > 100
  report {}
}
`

func TestBindPolicyFromListens(t *testing.T) {
	g := testListenGuard(t, "")
	bp, err := g.bindPolicy(sockettest.Parse(t, listenPolicy))
	if err != nil {
		t.Fatal(err)
	}
	// shop1 (2000, by name) and bob (2001, by group) are customers and
	// shops: the union of both allow lists, refused (customers binds);
	// far (70000) is a shop only: kill-only, not in the kernel's map.
	want := "1000-1999:refuse[127.0.0.1:11211-11211](customers) " +
		"2000-2001:refuse[127.0.0.1:11211-11211 *:8080-8080](customers) " +
		"2002-59999:refuse[127.0.0.1:11211-11211](customers) " +
		"60000-60009:monitor[](trial)"
	if got := describe(bp); got != want {
		t.Errorf("bind policy\n got %s\nwant %s", got, want)
	}
	if bp.MinUID != 1000 || len(bp.Sets) != 3 {
		t.Errorf("min uid %d, %d sets", bp.MinUID, len(bp.Sets))
	}

	// guardd run --mode monitor: nothing is refused, everything reported.
	bp, err = testListenGuard(t, policy.ModeMonitor).bindPolicy(sockettest.Parse(t, listenPolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range bp.Sets {
		if s.Refuse {
			t.Errorf("--mode monitor: a set refuses: %+v", s)
		}
	}
}

func TestBindPolicyLimits(t *testing.T) {
	var a, b []string
	for i := range 40 {
		a = append(a, fmt.Sprintf("%q", fmt.Sprintf("*:%d", 10000+i)))
		b = append(b, fmt.Sprintf("%q", fmt.Sprintf("*:%d", 20000+i)))
	}
	src := fmt.Sprintf(`
class "a" { uids = ["1000-2000"] }
class "b" { uids = ["1500-3000"] }
listen "a" {
  class = "a"
  allow = [%s]
}
listen "b" {
  class = "b"
  allow = [%s]
}
rule "r" {
  class = "a"
  when  = user.listeners > 100
  report {}
}
`, strings.Join(a, ", "), strings.Join(b, ", "))
	g := testListenGuard(t, "")
	p := sockettest.Parse(t, src)
	_, err := g.bindPolicy(p)
	if err == nil || !strings.Contains(err.Error(), "uids 1500-2000") || !strings.Contains(err.Error(), "80 allow patterns") {
		t.Errorf("bindPolicy = %v, want the 80 patterns of uids 1500-2000 refused", err)
	}
	if err := g.Validate(p); err == nil {
		t.Error("Validate accepted a policy the bind hook cannot hold")
	}
	// Without bind blocks there is nothing for the kernel to hold.
	p = sockettest.Parse(t, strings.ReplaceAll(src, "allow = [", "block = \"kill\"\n  allow = ["))
	if err := g.Validate(p); err != nil {
		t.Errorf("Validate of kill-only blocks: %v", err)
	}
}

func TestCoversAnyAddr(t *testing.T) {
	anyAddr := func(lo, hi uint16) enforce.BindAllow { return enforce.BindAllow{PortLo: lo, PortHi: hi} }
	lo4 := enforce.BindAllow{Addr: netip.MustParseAddr("127.0.0.1"), PortLo: 1, PortHi: 65535}
	for _, tc := range []struct {
		allow []enforce.BindAllow
		want  bool
	}{
		{nil, false},
		{[]enforce.BindAllow{anyAddr(32768, 60999)}, true},
		{[]enforce.BindAllow{anyAddr(1024, 65535)}, true},
		{[]enforce.BindAllow{anyAddr(40000, 60999), anyAddr(32768, 39999)}, true},  // adjacent, out of order
		{[]enforce.BindAllow{anyAddr(32768, 40000), anyAddr(40002, 60999)}, false}, // 40001 missing
		{[]enforce.BindAllow{anyAddr(32768, 60998)}, false},
		{[]enforce.BindAllow{lo4}, false}, // one address only: the autobound socket listens on all
	} {
		if got := coversAnyAddr(tc.allow, 32768, 60999); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.allow, got, tc.want)
		}
	}
}

// TestDatagramProbation: an unconnected UDP or UDP-Lite socket on an
// ephemeral port counts as a listener once it has stayed
// dgramClientGrace; TCP, and ports outside the range, count at once.
func TestDatagramProbation(t *testing.T) {
	g := &listenGuard{ephLo: 32768, ephHi: 60999, dgramSeen: map[uint64]time.Time{}}
	t0 := time.Unix(1000, 0)
	udp := platform.Listener{Proto: platform.UDP, Port: 40000, Cookie: 7}
	lite := platform.Listener{Proto: platform.UDPLite, Port: 50000, Cookie: 8}
	noCookie := platform.Listener{Proto: platform.UDP, Port: 40001, Inode: 99}
	for _, l := range []platform.Listener{
		{Proto: platform.TCP, Port: 40000, Cookie: 1},
		{Proto: platform.UDP, Port: 5353, Cookie: 2},
	} {
		if !g.isListener(l, t0, map[uint64]bool{}) {
			t.Errorf("%+v: not a listener at once", l)
		}
	}
	for _, step := range []struct {
		at   time.Duration
		want bool
	}{{0, false}, {dgramClientGrace - time.Millisecond, false}, {dgramClientGrace, true}, {time.Hour, true}} {
		for _, l := range []platform.Listener{udp, lite, noCookie} {
			seen := map[uint64]bool{}
			if got := g.isListener(l, t0.Add(step.at), seen); got != step.want {
				t.Errorf("%v after %v: %v, want %v", l.Proto, step.at, got, step.want)
			}
			if len(seen) != 1 {
				t.Errorf("seen = %v", seen)
			}
		}
	}
	if _, ok := g.dgramSeen[99]; !ok {
		t.Error("a socket without a cookie is not kept by inode")
	}
}

// TestEvidence: the lines of a listen block's rule name the listener that
// made it hold and why; other rules' lines, and processes not marked, are
// left alone.
func TestEvidence(t *testing.T) {
	g := testListenGuard(t, "")
	p := sockettest.Parse(t, listenPolicy)
	shops := Listens(p)[1]
	proc := &platform.Process{ProcID: platform.ProcID{PID: 42, StartTime: 7}, UID: 2000}
	l := platform.Listener{Proto: platform.TCP, Addr: netip.MustParseAddr("0.0.0.0"), Port: 6667, UID: 2000}
	g.forbidden = map[platform.ProcID]forbidden{proc.ProcID: {proc: proc, o: offence{l: l, listens: []*Listen{Listens(p)[0], shops}}}}
	rule := p.Rule(ListenRulePrefix + "shops")
	var ev report.Event
	g.Evidence(nil, &policy.Match{Rule: rule, Proc: proc}, &ev)
	if ev.Proto != "tcp" || ev.Addr != "0.0.0.0" || ev.Port != 6667 ||
		ev.Reason != `listening on `+l.String()+`, which none of listen "customers", "shops" allows` {
		t.Errorf("evidence: %+v", ev)
	}
	for _, m := range []*policy.Match{
		{Rule: p.Rule("r"), Proc: proc},
		{Rule: rule, Proc: &platform.Process{ProcID: platform.ProcID{PID: 43}}},
	} {
		var other report.Event
		g.Evidence(nil, m, &other)
		if other.Reason != "" || other.Port != 0 {
			t.Errorf("%s on pid %d: %+v", m.Rule.Name, m.Proc.PID, other)
		}
	}
}
