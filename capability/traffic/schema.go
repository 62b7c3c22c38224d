package traffic

import "github.com/guardd/guardd/policy"

// The traffic capability's policy schema: the user.* traffic and
// connection variables, filled in by Observe. (The egress_bps attribute
// of limits blocks is decoded with the rest of the block, in policy.)

func init() {
	policy.DefineNumber("user.tx_bytes_per_sec", policy.UserLevel, "bytes per second the user's sockets sent over the last tick (IP packets, headers included, IPv4 and IPv6; from the kernel's per-uid counters; 0 where the traffic hook does not run)",
		func(e *policy.Env) float64 { return e.User.TxBytesPerSec })
	policy.DefineNumber("user.rx_bytes_per_sec", policy.UserLevel, "bytes per second the user's sockets received over the last tick (as user.tx_bytes_per_sec)",
		func(e *policy.Env) float64 { return e.User.RxBytesPerSec })
	policy.DefineNumber("user.connections", policy.UserLevel, "established TCP connections (IPv4 and IPv6) whose socket the user owns, from one sock_diag dump per tick",
		func(e *policy.Env) float64 { return float64(e.User.Connections) })
	policy.DefineNumber("user.connect_refusals", policy.UserLevel, "connects and UDP sends the connect hook refused the user over the last tick (in monitor mode: would have refused)",
		func(e *policy.Env) float64 { return float64(e.User.ConnectRefusals) })
}
