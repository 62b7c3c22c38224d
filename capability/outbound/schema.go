package outbound

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/guardd/guardd/policy"
	"github.com/hashicorp/hcl/v2"
)

// The outbound capability's policy schema: connect blocks.
//
// Connect blocks say where the accounts of a class may not connect to,
// the outbound twin of listen blocks:
//
//	connect "customers" {
//	  class = "customers"
//	  deny  = ["*:25", "*:465", "*:587"]
//	  allow = ["127.0.0.1:*", "[::1]:*"]
//	  mode  = "monitor"
//	}
//
// A connect() (or a UDP sendto()) of an account in the class to a
// destination that a deny pattern matches and no allow pattern matches is
// refused. An account in several classes with connect blocks is governed
// by the first of them in policy order.

// MaxConnectPatterns bounds the deny and allow patterns of one block
// together: the kernel's connect hook checks them in a bounded loop.
const MaxConnectPatterns = 64

// maxConnects bounds the connect blocks of a policy (the kernel holds one
// set per block, twice during a reload).
const maxConnects = 32

// Connect is one connect block.
type Connect struct {
	Name      string
	Class     *policy.Class
	Deny      []ConnectPattern
	Allow     []ConnectPattern // exceptions to Deny
	Mode      string           // effective mode: the block's own, or the policy's
	ModeSet   bool             // the block sets its own mode
	DeclRange hcl.Range

	classExpr hcl.Expression
	className string
}

// At returns the block's "file:line", for logs and the audit trail.
func (c *Connect) At() string {
	return fmt.Sprintf("%s:%d", c.DeclRange.Filename, c.DeclRange.Start.Line)
}

// Refuses reports whether the block refuses a connect to addr:port: a
// deny pattern matches and no allow pattern does.
func (c *Connect) Refuses(addr netip.Addr, port uint16) bool {
	denied := false
	for i := range c.Deny {
		if c.Deny[i].Matches(addr, port) {
			denied = true
			break
		}
	}
	if !denied {
		return false
	}
	for i := range c.Allow {
		if c.Allow[i].Matches(addr, port) {
			return false
		}
	}
	return true
}

// ConnectPattern is one destination pattern: "ADDR:PORTS", where ADDR is
// "*" (any address), an IPv4 address or CIDR, or an IPv6 address or CIDR
// in brackets, and PORTS is a port, a range LOW-HIGH or "*".
type ConnectPattern struct {
	Text   string
	Prefix netip.Prefix // the addresses matched; the zero Prefix matches any
	PortLo uint16
	PortHi uint16
}

// ParseConnectPattern parses a destination pattern. IPv4-mapped IPv6
// addresses ([::ffff:10.0.0.0/104]) mean the IPv4 ones, as they do to the
// kernel.
func ParseConnectPattern(s string) (ConnectPattern, error) {
	p := ConnectPattern{Text: s}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return p, fmt.Errorf("%q has no port: write ADDR:PORT, e.g. \"*:%s\" or \"10.0.0.0/8:*\"", s, s)
	}
	host, ports := s[:i], s[i+1:]
	switch {
	case host == "*":
	case strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]"):
		pf, err := parsePrefix(host[1 : len(host)-1])
		if err != nil || !pf.Addr().Is6() {
			return p, fmt.Errorf("%q: %s is not an IPv6 address or CIDR", s, host)
		}
		if pf.Addr().Is4In6() {
			if pf.Bits() < 96 {
				return p, fmt.Errorf("%q: an IPv4-mapped CIDR needs at least 96 bits", s)
			}
			pf = netip.PrefixFrom(pf.Addr().Unmap(), pf.Bits()-96)
		}
		p.Prefix = pf.Masked()
	default:
		pf, err := parsePrefix(host)
		if err != nil || !pf.Addr().Is4() {
			return p, fmt.Errorf("%q: the address must be *, an IPv4 address or CIDR (10.0.0.0/8), or an IPv6 one in brackets ([::1], [2001:db8::/32])", s)
		}
		p.Prefix = pf.Masked()
	}
	if strings.TrimSpace(ports) == "*" {
		p.PortLo, p.PortHi = 0, 65535
		return p, nil
	}
	var err error
	p.PortLo, p.PortHi, err = policy.ParsePorts(s, ports)
	return p, err
}

// parsePrefix parses an address or a CIDR; zones are refused.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("zones are not supported")
	}
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Matches reports whether the pattern matches addr:port. IPv4-mapped IPv6
// addresses compare as IPv4.
func (p *ConnectPattern) Matches(addr netip.Addr, port uint16) bool {
	if port < p.PortLo || port > p.PortHi {
		return false
	}
	return !p.Prefix.IsValid() || p.Prefix.Contains(addr.Unmap())
}

// ConnectFor returns the connect block that governs an account: the first
// whose class contains it; nil for a protected account (uid 0, a system
// uid, protect) and for accounts no block names.
func ConnectFor(p *policy.Policy, uid uint32, user string, groups []string) *Connect {
	cs := Connects(p)
	if len(cs) == 0 || p.ProtectedAccount(uid, user, groups) != "" {
		return nil
	}
	for _, c := range cs {
		if c.Class != nil && c.Class.Contains(uid, user, groups) {
			return c
		}
	}
	return nil
}

// ConnectSpan is a range of uids governed by one connect block.
type ConnectSpan struct {
	Lo, Hi  uint32 // inclusive
	Connect *Connect
}

// ConnectSpans returns the uids each connect block governs, leaving out
// protected accounts (uid 0, uids below min_uid, protect) and uids an
// earlier block already governs. Names are resolved through idx: the
// kernel's connect hook sees only uids.
func ConnectSpans(p *policy.Policy, idx policy.AccountIndex) []ConnectSpan {
	cs := Connects(p)
	if len(cs) == 0 {
		return nil
	}
	classes := make([]*policy.Class, len(cs))
	for i, c := range cs {
		classes[i] = c.Class
	}
	var out []ConnectSpan
	for i, uids := range p.FirstClassUIDs(classes, idx) {
		for _, r := range uids {
			out = append(out, ConnectSpan{Lo: r.Lo, Hi: r.Hi, Connect: cs[i]})
		}
	}
	return out
}

// connectsSlot holds a policy's connect blocks, in policy order.
var connectsSlot = policy.NewSlot[[]*Connect]("connect")

// Connects returns p's connect blocks in policy order.
func Connects(p *policy.Policy) []*Connect {
	if cs := connectsSlot.Get(p); cs != nil {
		return *cs
	}
	return nil
}

func init() {
	policy.RegisterBlock("connect", []string{"name"}, func(d *policy.Decoder, b *hcl.Block, _ []byte) { connectBlock(d, b) })
	policy.RegisterFinisher(finishConnects)
}

var connectSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "class", Required: true}, {Name: "deny", Required: true}, {Name: "allow"}, {Name: "mode"},
}}

func connectBlock(d *policy.Decoder, b *hcl.Block) {
	name := b.Labels[0]
	cs := connectsSlot.Get(d.Policy())
	if cs == nil {
		cs = new([]*Connect)
		connectsSlot.Set(d, cs)
	}
	for _, c := range *cs {
		if c.Name == name {
			d.Errf(b.LabelRanges[0].Ptr(), "Duplicate connect block", "Connect block %q is already defined at %s.", name, policy.RangeAt(c.DeclRange))
			return
		}
	}
	if !policy.ValidName(name) {
		d.Errf(b.LabelRanges[0].Ptr(), "Bad connect block name", "Names use letters, digits, '-' and '_'.")
	}
	content, diags := b.Body.Content(connectSchema)
	d.Report(diags)
	c := &Connect{Name: name, DeclRange: b.DefRange}
	if a := content.Attributes["class"]; a != nil {
		if s, ok := d.Str(a.Expr); ok {
			c.className, c.classExpr = s, a.Expr
		}
	}
	n := 0
	patterns := func(a *hcl.Attribute) []ConnectPattern {
		var out []ConnectPattern
		items := d.StringList(a)
		n += len(items)
		for _, it := range items {
			p, err := ParseConnectPattern(it.Text)
			if err != nil {
				d.Errf(it.Range.Ptr(), "Bad connect pattern", "%s.", err)
				continue
			}
			out = append(out, p)
		}
		return out
	}
	if a := content.Attributes["deny"]; a != nil {
		c.Deny = patterns(a)
		if n == 0 {
			d.Errf(a.Expr.Range().Ptr(), "Nothing denied", "A connect block refuses the destinations in deny, e.g. deny = [\"*:25\", \"*:465\", \"*:587\"]; an empty list refuses nothing.")
		}
		if n > MaxConnectPatterns {
			d.Errf(a.Expr.Range().Ptr(), "Too many connect patterns",
				"A connect block has at most %d deny and allow patterns together (the kernel's connect hook checks them in a bounded loop); use ranges and CIDRs.", MaxConnectPatterns)
		}
	}
	if a := content.Attributes["allow"]; a != nil {
		before := n
		c.Allow = patterns(a)
		if n > MaxConnectPatterns && before <= MaxConnectPatterns {
			d.Errf(a.Expr.Range().Ptr(), "Too many connect patterns",
				"A connect block has at most %d deny and allow patterns together (the kernel's connect hook checks them in a bounded loop); use ranges and CIDRs.", MaxConnectPatterns)
		}
	}
	if a := content.Attributes["mode"]; a != nil {
		if v, ok := d.Mode(a); ok {
			c.Mode, c.ModeSet = v, true
		}
	}
	if len(*cs) == maxConnects {
		d.Errf(b.DefRange.Ptr(), "Too many connect blocks", "A policy can have at most %d connect blocks.", maxConnects)
		return
	}
	*cs = append(*cs, c)
}

// finishConnects resolves the classes the connect blocks name, and their
// mode, once every file is read.
func finishConnects(d *policy.Decoder, _ bool) {
	p := d.Policy()
	for _, c := range Connects(p) {
		if c.classExpr != nil {
			c.Class = d.LookupClass(c.className, c.classExpr.Range())
		}
		if !c.ModeSet {
			c.Mode = p.Mode
		}
	}
}
