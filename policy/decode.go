package policy

import (
	"math"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Decoding helpers of the blocks of capabilities (the report block's,
// the steps'), exported through the Decoder (schema.go).

// attrs decodes a block against the attribute names it takes.
func (d *Decoder) attrs(b *hcl.Block, names ...string) hcl.Attributes {
	schema := &hcl.BodySchema{}
	for _, n := range names {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: n})
	}
	content, diags := b.Body.Content(schema)
	d.diags = append(d.diags, diags...)
	return content.Attributes
}

// durationIn decodes a duration attribute that must lie in [lo, hi].
func (d *Decoder) durationIn(attrs hcl.Attributes, name string, lo, hi time.Duration, into *time.Duration) {
	a := attrs[name]
	if a == nil {
		return
	}
	v, ok := d.duration(a)
	if !ok {
		return
	}
	if v < lo || v > hi {
		d.errf(a.Expr.Range().Ptr(), "Duration out of range", "%s must be between %s and %s.", name, lo, hi)
		return
	}
	*into = v
}

// intIn decodes a whole number attribute that must lie in [lo, hi].
func (d *Decoder) intIn(attrs hcl.Attributes, name string, lo, hi int, into *int) {
	a := attrs[name]
	if a == nil {
		return
	}
	v, ok := d.number(a.Expr)
	if !ok {
		return
	}
	if v != math.Trunc(v) || v < float64(lo) || v > float64(hi) {
		d.errf(a.Expr.Range().Ptr(), "Number out of range", "%s must be a whole number from %d to %d.", name, lo, hi)
		return
	}
	*into = int(v)
}

func (d *Decoder) strAttr(attrs hcl.Attributes, name string, into *string) (*hcl.Attribute, bool) {
	a := attrs[name]
	if a == nil {
		return nil, false
	}
	v, ok := d.str(a.Expr)
	if !ok {
		return a, false
	}
	*into = v
	return a, true
}

func (d *Decoder) absPathAttr(attrs hcl.Attributes, name string, into *string) {
	if a := attrs[name]; a != nil {
		if v, ok := d.absPath(a); ok {
			*into = v
		}
	}
}

func (d *Decoder) hostPort(attrs hcl.Attributes, name string, into *string) {
	a, ok := d.strAttr(attrs, name, into)
	if !ok {
		return
	}
	host, port, err := net.SplitHostPort(*into)
	if err != nil || port == "" || strings.ContainsAny(host, " /") {
		d.errf(a.Expr.Range().Ptr(), "Expected host:port", "Write %s = \"host:port\", e.g. \"127.0.0.1:25\" (IPv6: \"[::1]:25\").", name)
	}
}

// cleanName is a template name usable as a file name.
func cleanName(s string) bool {
	return validName(s) && filepath.Base(s) == s
}
