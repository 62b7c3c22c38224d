package policy

import "github.com/hashicorp/hcl/v2"

// Traffic per customer: the egress_bps attribute of `limits` blocks (an
// egress rate per uid, policed in the kernel by the traffic capability's
// hook, which defines the user.* traffic variables itself).

// MinEgressBPS is the smallest egress_bps: below it a policed TCP
// connection stalls more than it flows.
const MinEgressBPS = 64 << 10

func init() {
	isolationAttrs = append(isolationAttrs, hcl.AttributeSchema{Name: "egress_bps"})
}

// decodeTraffic reads egress_bps of a limits block into l.
func (d *Decoder) decodeTraffic(l *Limit, content *hcl.BodyContent) {
	if a := content.Attributes["egress_bps"]; a != nil {
		l.EgressBPS = d.sizeAttr(a.Expr, MinEgressBPS, "egress_bps",
			"bytes per second the customer's sockets may send together (IPv4 and IPv6; \"12MiB\" is about 100 Mbit/s); packets over it are dropped in the kernel and TCP slows down to it")
	}
}

// Policing reports whether a limits block sets egress_bps.
func (p *Policy) Policing() bool {
	for _, l := range p.Limits {
		if l.EgressBPS > 0 {
			return true
		}
	}
	return false
}
