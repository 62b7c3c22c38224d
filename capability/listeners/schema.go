package listeners

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/guardd/guardd/policy"
	"github.com/hashicorp/hcl/v2"
)

// The listeners capability's policy schema: listen blocks, the rule each
// compiles to (listen:NAME, added by a finisher), and the variables of
// listening sockets, filled in by Observe.
//
// Listen blocks say which listening sockets the accounts of a class may
// have:
//
//	listen "customers" {
//	  class = "customers"
//	  allow = ["127.0.0.1:11211", "*:60000-60099"]
//	  block = "bind"
//	}
//
// A listener (a TCP socket in LISTEN state, a bound unconnected UDP socket)
// of an account in the class is allowed when an allow pattern matches its
// local address and port. An account in several classes with listen
// blocks may listen where any of them allows.

// What a listen block does to listeners it does not allow.
const (
	// BlockBind refuses the bind() in the kernel where it can (a cgroup
	// BPF hook), and closes what slipped through like BlockKill.
	BlockBind = "bind"
	// BlockKill closes unauthorized listeners by killing every process
	// that holds them.
	BlockKill = "kill"
)

// MaxListenAllow bounds the allow patterns that apply to one account: the
// kernel's bind hook checks them in a bounded loop.
const MaxListenAllow = 64

// maxListens bounds the listen blocks of a policy: the accounts each block
// governs are tracked as a bit mask.
const maxListens = 64

// Listen is one listen block.
type Listen struct {
	Name      string
	Class     *policy.Class
	Allow     []ListenPattern // empty: no listening at all
	Block     string          // BlockBind or BlockKill
	Mode      string          // effective mode: the block's own, or the policy's
	ModeSet   bool            // the block sets its own mode
	DeclRange hcl.Range

	// Resolved once every file is read (the class may be defined later).
	classExpr hcl.Expression
	className string
	modeSet   bool
}

// At returns the block's "file:line", for logs and the audit trail.
func (l *Listen) At() string {
	return fmt.Sprintf("%s:%d", l.DeclRange.Filename, l.DeclRange.Start.Line)
}

// Allows reports whether a listener on addr:port is allowed by one of the
// block's patterns.
func (l *Listen) Allows(addr netip.Addr, port uint16) bool {
	for i := range l.Allow {
		if l.Allow[i].Matches(addr, port) {
			return true
		}
	}
	return false
}

// ListenPattern is one allow pattern: "ADDR:PORT" or "ADDR:LOW-HIGH", where
// ADDR is "*" (any address), an IPv4 address or an IPv6 address in
// brackets.
type ListenPattern struct {
	Text   string
	Addr   netip.Addr // the address allowed; the zero Addr allows any
	PortLo uint16
	PortHi uint16
}

// ParseListenPattern parses an allow pattern. An IPv4-mapped IPv6 address
// ([::ffff:127.0.0.1]) means the IPv4 address, as it does to the kernel.
func ParseListenPattern(s string) (ListenPattern, error) {
	p := ListenPattern{Text: s}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return p, fmt.Errorf("%q has no port: write ADDR:PORT, e.g. \"*:%s\" or \"127.0.0.1:%s\"", s, s, s)
	}
	host, ports := s[:i], s[i+1:]
	switch {
	case host == "*":
	case strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]"):
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !a.Is6() {
			return p, fmt.Errorf("%q: %s is not an IPv6 address", s, host)
		}
		if a.Zone() != "" {
			return p, fmt.Errorf("%q: zones (%%%s) are not supported", s, a.Zone())
		}
		p.Addr = a.Unmap()
	default:
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() {
			return p, fmt.Errorf("%q: the address must be *, an IPv4 address or an IPv6 address in brackets ([::1])", s)
		}
		p.Addr = a
	}
	var err error
	p.PortLo, p.PortHi, err = policy.ParsePorts(s, ports)
	return p, err
}

// Matches reports whether the pattern allows a listener on addr:port.
// IPv4-mapped IPv6 addresses compare as IPv4.
func (p *ListenPattern) Matches(addr netip.Addr, port uint16) bool {
	if port < p.PortLo || port > p.PortHi {
		return false
	}
	return !p.Addr.IsValid() || p.Addr == addr.Unmap()
}

// ListenAllowed reports whether any of the blocks allows a listener on
// addr:port.
func ListenAllowed(ls []*Listen, addr netip.Addr, port uint16) bool {
	for _, l := range ls {
		if l.Allows(addr, port) {
			return true
		}
	}
	return false
}

// ListensFor returns the listen blocks that govern an account, in policy
// order; none for a protected account (uid 0, a system uid, protect).
func ListensFor(p *policy.Policy, uid uint32, user string, groups []string) []*Listen {
	ls := Listens(p)
	if len(ls) == 0 || p.ProtectedAccount(uid, user, groups) != "" {
		return nil
	}
	var out []*Listen
	for _, l := range ls {
		if l.Class != nil && l.Class.Contains(uid, user, groups) {
			out = append(out, l)
		}
	}
	return out
}

// listensSlot holds a policy's listen blocks, in policy order.
var listensSlot = policy.NewSlot[[]*Listen]("listen")

// Listens returns p's listen blocks in policy order.
func Listens(p *policy.Policy) []*Listen {
	if ls := listensSlot.Get(p); ls != nil {
		return *ls
	}
	return nil
}

func init() {
	policy.RegisterBlock("listen", []string{"name"}, func(d *policy.Decoder, b *hcl.Block, _ []byte) { listenBlock(d, b) })
	policy.RegisterFinisher(finishListens)

	policy.DefineNumberList("proc.listen_ports", policy.ProcLevel, "ports the process listens on: TCP listeners and unconnected UDP sockets among its descriptors, sorted; filled only for the classes of rules that read it",
		func(e *policy.Env) []float64 {
			ports := e.Proc.ListenPorts
			if len(ports) == 0 {
				return nil // most processes: no allocation
			}
			out := make([]float64, len(ports))
			for i, p := range ports {
				out[i] = float64(p)
			}
			return out
		})
	policy.DefineNumber("proc.forbidden_listens", policy.ProcLevel, "listening sockets the process holds that the listen blocks governing its user do not allow (what a listen block's own rule, listen:NAME, kills)",
		func(e *policy.Env) float64 { return float64(e.Proc.ForbiddenListens) })
	policy.DefineNumber("user.listeners", policy.UserLevel, "listening sockets the user owns (TCP listen, unconnected UDP)",
		func(e *policy.Env) float64 { return float64(e.User.Listeners) })
}

var listenSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "class", Required: true}, {Name: "allow"}, {Name: "block"}, {Name: "mode"},
}}

func listenBlock(d *policy.Decoder, b *hcl.Block) {
	name := b.Labels[0]
	ls := listensSlot.Get(d.Policy())
	if ls == nil {
		ls = new([]*Listen)
		listensSlot.Set(d, ls)
	}
	for _, l := range *ls {
		if l.Name == name {
			d.Errf(b.LabelRanges[0].Ptr(), "Duplicate listen block", "Listen block %q is already defined at %s.", name, policy.RangeAt(l.DeclRange))
			return
		}
	}
	if !policy.ValidName(name) {
		d.Errf(b.LabelRanges[0].Ptr(), "Bad listen block name", "Names use letters, digits, '-' and '_'.")
	}
	content, diags := b.Body.Content(listenSchema)
	d.Report(diags)
	l := &Listen{Name: name, Block: BlockBind, DeclRange: b.DefRange}
	if a := content.Attributes["class"]; a != nil {
		if s, ok := d.Str(a.Expr); ok {
			l.className, l.classExpr = s, a.Expr
		}
	}
	if a := content.Attributes["allow"]; a != nil {
		items := d.StringList(a)
		for _, it := range items {
			p, err := ParseListenPattern(it.Text)
			if err != nil {
				d.Errf(it.Range.Ptr(), "Bad listen pattern", "%s.", err)
				continue
			}
			l.Allow = append(l.Allow, p)
		}
		if len(items) > MaxListenAllow {
			d.Errf(a.Expr.Range().Ptr(), "Too many allow patterns",
				"A listen block allows at most %d patterns (the kernel's bind hook checks them in a bounded loop); merge neighbouring ports into ranges such as \"*:8000-8099\".", MaxListenAllow)
		}
	}
	if a := content.Attributes["block"]; a != nil {
		if s, ok := d.Str(a.Expr); ok {
			switch s {
			case BlockBind, BlockKill:
				l.Block = s
			default:
				d.Errf(a.Expr.Range().Ptr(), "Unknown block", "block is %q (refuse bind() in the kernel, and close what slipped through) or %q (close listeners by killing their processes).", BlockBind, BlockKill)
			}
		}
	}
	if a := content.Attributes["mode"]; a != nil {
		if v, ok := d.Mode(a); ok {
			l.Mode, l.modeSet, l.ModeSet = v, true, true
		}
	}
	if len(*ls) == maxListens {
		d.Errf(b.DefRange.Ptr(), "Too many listen blocks", "A policy can have at most %d listen blocks.", maxListens)
		return
	}
	*ls = append(*ls, l)
}

// finishListens resolves the classes the listen blocks name, and their
// mode, once every file is read, and gives every block its rule.
func finishListens(d *policy.Decoder, _ bool) {
	p := d.Policy()
	for _, l := range Listens(p) {
		if l.classExpr != nil {
			l.Class = d.LookupClass(l.className, l.classExpr.Range())
		}
		if !l.modeSet {
			l.Mode = p.Mode
		}
		if l.Class != nil {
			d.AddRule(listenRule(d, l))
		}
	}
}

// ListenRulePrefix starts the name of a listen block's rule: "listen:NAME".
const ListenRulePrefix = "listen:"

// listenCondition is the condition of a listen block's rule; it holds only
// for the processes whose forbidden listeners this block acts on (the
// listeners capability names it in ForbiddenListenBlock: the first
// enforcing block governing the user, else the first), so that a user in
// two classes is killed by one rule, not two.
const listenCondition = "proc.forbidden_listens > 0"

// listenRule is the rule that carries out detect-and-kill for a listen
// block (both kinds: a bind block kills what slipped past the kernel):
// it kills, with SIGKILL, every process holding a listener the block
// refuses, through the ledger and the enforcer like any rule. Its key
// hashes the block, so an edited block (another allow list, mode or
// class) judges afresh.
func listenRule(d *policy.Decoder, l *Listen) *policy.Rule {
	cond := d.CompileWhen(listenCondition, l.DeclRange)
	name := l.Name
	cond.Narrow(func(e *policy.Env) bool { return e.Proc.ForbiddenListenBlock == name })
	r := &policy.Rule{
		Name: ListenRulePrefix + l.Name, Class: l.Class, Mode: l.Mode, ModeSet: l.ModeSet,
		When: cond, Cooldown: policy.DefaultCooldown, Scope: policy.ScopeProcess, ScopeSet: true, DeclRange: l.DeclRange,
		Steps: []policy.Step{{Kind: policy.StepKill, Signal: "KILL", DeclRange: l.DeclRange}},
	}
	h := sha256.New()
	fmt.Fprintf(h, "rule=%s\nblock=%s\nmode=%s\nclass=%s\n", r.ContentKey(), l.Block, l.Mode, l.Class.Name)
	for _, a := range l.Allow {
		fmt.Fprintf(h, "allow=%s\n", a.Text)
	}
	r.Key = r.Name + "@" + hex.EncodeToString(h.Sum(nil)[:6])
	return r
}

// ListenSpan is a range of uids governed by the same listen blocks.
type ListenSpan struct {
	Lo, Hi  uint32    // inclusive
	Listens []*Listen // in policy order; never empty
}

// ListenSpans partitions the uids that listen blocks govern into ranges
// governed by the same blocks, in uid order, leaving out protected
// accounts (uid 0, uids below min_uid, protect). Accounts that classes
// select by user or group name are resolved through idx: this is what the
// kernel's bind hook, which sees only uids, enforces.
func ListenSpans(p *policy.Policy, idx policy.AccountIndex) []ListenSpan {
	blocks := Listens(p)
	if len(blocks) == 0 {
		return nil
	}

	type edge struct {
		at   uint64 // a uid, or 1<<32 for the end of the last
		bit  uint64
		open bool
	}
	var edges []edge
	for i, l := range blocks {
		if l.Class == nil {
			continue
		}
		bit := uint64(1) << i
		for _, r := range p.GovernedUIDs(l.Class, idx) {
			edges = append(edges, edge{uint64(r.Lo), bit, true}, edge{uint64(r.Hi) + 1, bit, false})
		}
	}
	sort.Slice(edges, func(i, j int) bool { return edges[i].at < edges[j].at })
	var out []ListenSpan
	var mask uint64
	for i := 0; i < len(edges); {
		at := edges[i].at
		for ; i < len(edges) && edges[i].at == at; i++ {
			if edges[i].open {
				mask |= edges[i].bit
			} else {
				mask &^= edges[i].bit
			}
		}
		if mask == 0 || i == len(edges) {
			continue
		}
		lo, hi := uint32(at), uint32(edges[i].at-1)
		if n := len(out); n > 0 && out[n-1].Hi+1 == lo && sameListens(out[n-1].Listens, mask, blocks) {
			out[n-1].Hi = hi
			continue
		}
		var ls []*Listen
		for j, l := range blocks {
			if mask&(1<<j) != 0 {
				ls = append(ls, l)
			}
		}
		out = append(out, ListenSpan{Lo: lo, Hi: hi, Listens: ls})
	}
	return out
}

func sameListens(ls []*Listen, mask uint64, all []*Listen) bool {
	var m uint64
	for _, l := range ls {
		for j, a := range all {
			if a == l {
				m |= 1 << j
			}
		}
	}
	return m == mask
}
