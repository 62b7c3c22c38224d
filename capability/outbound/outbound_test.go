package outbound

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/guardd/guardd/capability/internal/socketrules/sockettest"
	"github.com/guardd/guardd/policy"
)

// TestConnectPolicy: what the kernel's connect hook is given for a policy:
// one set per block, its allow patterns before its deny patterns (the
// first rule that matches decides), uids of users resolved, monitor mode
// (the block's or `guardd run --mode monitor`) as a set that does not
// refuse.
func TestConnectPolicy(t *testing.T) {
	p := sockettest.Parse(t, `
class "shops" { users = ["shop1"] }
class "all" { uids = ["1000-59999"] }
connect "shops" {
  class = "shops"
  deny  = ["*:25"]
  allow = ["10.0.0.0/8:*"]
  mode  = "enforce"
}
connect "all" {
  class = "all"
  deny  = ["*:25", "*:465"]
  allow = ["127.0.0.1:*"]
  mode  = "monitor"
}
`)
	h := sockettest.NewHost(t, "")
	cp, err := connectPolicy(p, h.Accounts(), func(c *Connect) string { return c.Mode })
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.Sets) != 2 || cp.MinUID != p.MinUID {
		t.Fatalf("sets %d, min uid %d", len(cp.Sets), cp.MinUID)
	}
	shops, all := cp.Sets[0], cp.Sets[1]
	if !shops.Refuse || all.Refuse || shops.Tag.(*Connect).Name != "shops" {
		t.Errorf("refuse: shops %v, all %v", shops.Refuse, all.Refuse)
	}
	if len(shops.Rules) != 2 || shops.Rules[0].Deny || shops.Rules[0].Prefix != netip.MustParsePrefix("10.0.0.0/8") ||
		!shops.Rules[1].Deny || shops.Rules[1].Prefix.IsValid() || shops.Rules[1].PortLo != 25 {
		t.Errorf("shops rules: %+v", shops.Rules)
	}
	if len(all.Rules) != 3 || all.Rules[0].Deny || !all.Rules[2].Deny || all.Rules[2].PortLo != 465 {
		t.Errorf("all rules: %+v", all.Rules)
	}
	var spans []string
	for _, u := range cp.UIDs {
		spans = append(spans, cp.Sets[u.Set].Tag.(*Connect).Name+":"+itoa(u.Lo)+"-"+itoa(u.Hi))
	}
	// shop1 is uid 2000: held by its own block, not by "all".
	if got := strings.Join(spans, " "); got != "shops:2000-2000 all:1000-1999 all:2001-59999" {
		t.Errorf("uids: %s", got)
	}
	// guardd run --mode monitor: nothing refused.
	cg := &connectGuard{h: sockettest.NewHost(t, policy.ModeMonitor), pol: p}
	cp, err = connectPolicy(p, cg.h.Accounts(), cg.mode)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cp.Sets {
		if s.Refuse {
			t.Errorf("--mode monitor: set %v refuses", s.Tag)
		}
	}
}

func itoa(u uint32) string { return strconv.FormatUint(uint64(u), 10) }
