package policy

import "github.com/hashicorp/hcl/v2"

// Traffic per customer: the user.* traffic and connection variables, and
// the egress_bps attribute of `limits` blocks (an egress rate per uid,
// policed in the kernel by the traffic capability's hook).

// MinEgressBPS is the smallest egress_bps: below it a policed TCP
// connection stalls more than it flows.
const MinEgressBPS = 64 << 10

func init() {
	isolationAttrs = append(isolationAttrs, hcl.AttributeSchema{Name: "egress_bps"})

	defNum("user.tx_bytes_per_sec", lvUser, "bytes per second the user's sockets sent over the last tick (IP packets, headers included, IPv4 and IPv6; from the kernel's per-uid counters; 0 where the traffic hook does not run)",
		func(e *Env) float64 { return e.User.TxBytesPerSec })
	defNum("user.rx_bytes_per_sec", lvUser, "bytes per second the user's sockets received over the last tick (as user.tx_bytes_per_sec)",
		func(e *Env) float64 { return e.User.RxBytesPerSec })
	defNum("user.connections", lvUser, "established TCP connections (IPv4 and IPv6) whose socket the user owns, from one sock_diag dump per tick",
		func(e *Env) float64 { return float64(e.User.Connections) })
	defNum("user.connect_refusals", lvUser, "connects and UDP sends the connect hook refused the user over the last tick (in monitor mode: would have refused)",
		func(e *Env) float64 { return float64(e.User.ConnectRefusals) })
}

// decodeTraffic reads egress_bps of a limits block into l.
func (d *decoder) decodeTraffic(l *Limit, content *hcl.BodyContent) {
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
