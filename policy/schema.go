package policy

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// What a capability's schema (its schema.go, registered from an init
// function) needs of the language: the Decoder's helpers, and a Slot on
// Policy for what its blocks compile to.

// Errf reports an error at r; detail is a format for args.
func (d *Decoder) Errf(r *hcl.Range, summary, detail string, args ...any) {
	d.errf(r, summary, detail, args...)
}

// Report adds diagnostics HCL gave (a block's Content, say).
func (d *Decoder) Report(diags hcl.Diagnostics) { d.diags = append(d.diags, diags...) }

// Policy is the policy being decoded (finishers read every rule of it).
func (d *Decoder) Policy() *Policy { return d.p }

// Value evaluates a constant expression; false when it has none (already
// reported).
func (d *Decoder) Value(e hcl.Expression) (cty.Value, bool) { return d.value(e) }

// Duration decodes a duration attribute ("90s", "2d"); false when it is
// not one (already reported).
func (d *Decoder) Duration(a *hcl.Attribute) (time.Duration, bool) { return d.duration(a) }

// DurationIn decodes attrs[name], when present, into *into: a duration
// in [lo, hi].
func (d *Decoder) DurationIn(attrs hcl.Attributes, name string, lo, hi time.Duration, into *time.Duration) {
	d.durationIn(attrs, name, lo, hi, into)
}

// IntIn decodes attrs[name], when present, into *into: a whole number in
// [lo, hi].
func (d *Decoder) IntIn(attrs hcl.Attributes, name string, lo, hi int, into *int) {
	d.intIn(attrs, name, lo, hi, into)
}

// StrAttr decodes attrs[name], when present, into *into: a string. It
// returns the attribute (nil when absent) and whether it was a string.
func (d *Decoder) StrAttr(attrs hcl.Attributes, name string, into *string) (*hcl.Attribute, bool) {
	return d.strAttr(attrs, name, into)
}

// Errors counts the errors reported so far: a decoder compares the counts
// before and after its own checks.
func (d *Decoder) Errors() int {
	n := 0
	for _, dg := range d.diags {
		if dg.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

// ValidTemplateName reports whether s can name a mail template (a file
// NAME.LANG.tmpl in the templates directory).
func ValidTemplateName(s string) bool { return cleanName(s) }

// RangeAt is "file:line" of r, for an error that points at an earlier
// definition.
func RangeAt(r hcl.Range) string { return rangeAt(r) }

// slotKey tells one Slot from another: each is a distinct pointer.
type slotKey struct{ name string }

// Slot is one capability's part of a compiled Policy: what its blocks
// compile to, set while decoding and read-only after, so that Policy has
// no field per capability. Make each with NewSlot once, in a package
// variable.
type Slot[T any] struct{ key *slotKey }

// NewSlot makes a slot; name is for debugging only.
func NewSlot[T any](name string) Slot[T] { return Slot[T]{&slotKey{name}} }

// Get returns what the slot holds in p, or nil when p's blocks set none.
func (s Slot[T]) Get(p *Policy) *T {
	v, _ := p.ext[s.key].(*T)
	return v
}

// Set puts v in the slot of the policy being decoded.
func (s Slot[T]) Set(d *Decoder, v *T) {
	if d.p.ext == nil {
		d.p.ext = map[*slotKey]any{}
	}
	d.p.ext[s.key] = v
}

func (s Slot[T]) String() string { return fmt.Sprintf("slot %s", s.key.name) }

// Str evaluates a constant string expression; false when it is not one
// (already reported).
func (d *Decoder) Str(e hcl.Expression) (string, bool) { return d.str(e) }

// Item is one string of a list attribute, with where it is written.
type Item struct {
	Text  string
	Range hcl.Range
}

// StringList decodes a list of non-empty strings (the bad ones reported
// and left out).
func (d *Decoder) StringList(a *hcl.Attribute) []Item {
	var out []Item
	for _, it := range d.stringList(a) {
		out = append(out, Item{it.s, it.r})
	}
	return out
}

// Mode decodes a mode attribute: "enforce" or "monitor".
func (d *Decoder) Mode(a *hcl.Attribute) (string, bool) { return d.mode(a) }

// LookupClass returns the class called name, or reports at rng that there
// is none (with a suggestion) and returns nil. Finishers call it, once
// every file has defined its classes.
func (d *Decoder) LookupClass(name string, rng hcl.Range) *Class { return d.lookupClass(name, rng) }

// ValidName reports whether s can name a block: letters, digits, '-'
// and '_'.
func ValidName(s string) bool { return validName(s) }

// ParsePorts parses the PORTS of pattern s: a port or a range LOW-HIGH
// (the patterns of listen and connect blocks alike).
func ParsePorts(s, ports string) (uint16, uint16, error) { return parsePorts(s, ports) }

// FirstClassUIDs returns, for each of classes in order, the uids it
// governs when the first class containing a uid governs it: its members
// (names resolved through idx, as a kernel hook sees only uids) without
// protected accounts (uid 0, uids below min_uid, protect) and without the
// uids of the classes before it. A nil class governs none.
func (p *Policy) FirstClassUIDs(classes []*Class, idx AccountIndex) [][]UIDRange {
	taken := p.protectedUIDs(idx)
	out := make([][]UIDRange, len(classes))
	for i, c := range classes {
		if c == nil {
			continue
		}
		mine := membersUIDs(&c.Members, idx).normalize().minus(taken)
		out[i] = mine
		taken = append(taken, mine...).normalize()
	}
	return out
}

// Attrs decodes block b against the attribute names it takes (the others
// reported).
func (d *Decoder) Attrs(b *hcl.Block, names ...string) hcl.Attributes { return d.attrs(b, names...) }

// AbsPathAttr decodes attrs[name], when present, into *into: an absolute
// path, cleaned.
func (d *Decoder) AbsPathAttr(attrs hcl.Attributes, name string, into *string) {
	d.absPathAttr(attrs, name, into)
}

// HostPort decodes attrs[name], when present, into *into: "host:port".
func (d *Decoder) HostPort(attrs hcl.Attributes, name string, into *string) {
	d.hostPort(attrs, name, into)
}

// GovernedUIDs returns the uids of class c that a block naming it may
// govern: its members (names resolved through idx) without protected
// accounts (uid 0, uids below min_uid, protect), normalized.
func (p *Policy) GovernedUIDs(c *Class, idx AccountIndex) []UIDRange {
	return membersUIDs(&c.Members, idx).normalize().minus(p.protectedUIDs(idx))
}

// CompileWhen compiles src, a condition a capability writes for a rule it
// adds (a listen block's own rule), placed at rng for diagnostics. A
// mistake in src is the capability's, not the admin's: it panics.
func (d *Decoder) CompileWhen(src string, rng hcl.Range) *Condition {
	expr, diags := hclsyntax.ParseExpression([]byte(src), rng.Filename, rng.Start)
	if diags.HasErrors() {
		panic("condition " + src + ": " + diags.Error())
	}
	cond, diags := CompileCondition(expr, []byte(src))
	if diags.HasErrors() {
		panic("condition " + src + ": " + diags.Error())
	}
	cond.pol, cond.Source = d.p, src
	return cond
}

// Narrow makes the condition hold only where also holds too: a rule a
// capability adds acts on only what is its own (the processes whose
// forbidden listeners its listen block acts on). For the conditions of
// CompileWhen, before the rule is added.
func (c *Condition) Narrow(also func(*Env) bool) {
	holds := c.eval
	c.eval = func(e *Env) bool { return also(e) && holds(e) }
}

// AddRule appends a rule a capability makes of its block (listen:NAME),
// from a finisher, giving it its index. The capability sets its Key:
// ContentKey plus what of its block the rule stands for.
func (d *Decoder) AddRule(r *Rule) {
	r.Index = len(d.p.Rules)
	d.p.Rules = append(d.p.Rules, r)
}

// ContentKey is what a rule's key hashes of the rule itself.
func (r *Rule) ContentKey() string { return r.contentKey() }
