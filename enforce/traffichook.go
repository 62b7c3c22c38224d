package enforce

import (
	"encoding/binary"
	"time"
)

// The traffic hook counts every customer's bytes and packets in the
// kernel and polices the egress of customers with a rate: cgroup_skb
// ingress and egress programs on the cgroup v2 root see every packet of
// every socket on the host (IPv4 and IPv6 alike), keyed by the uid that
// owns the socket (bpf_get_socket_uid). This file holds the maps' contents
// as pure functions; the programs are in traffichook_linux.go.

// Limits of the kernel maps.
const (
	// MaxTrafficUIDs is the number of uids counted at once. When the map
	// is full, uids not yet in it are not counted (their packets still
	// pass); TrafficHook.Full says so.
	MaxTrafficUIDs = 1 << 16
	// MaxTrafficLimits is the number of uids held to an egress rate.
	MaxTrafficLimits = 1 << 16
	// overflowUID is what the kernel reports for a packet of no full
	// socket (a TIME_WAIT or request socket's reply): not a customer.
	overflowUID = 65534
)

// TrafficCounts are one uid's totals since the hook was loaded, summed
// over CPUs. Bytes are IP packet lengths (headers included); a GSO packet
// counts as the segments it will be cut into.
type TrafficCounts struct {
	TxBytes, TxPackets uint64
	RxBytes, RxPackets uint64
	// TxDropped are the egress packets the rate dropped (TCP resends
	// them at the rate).
	TxDropped uint64
}

// TrafficLimit holds a uid's egress to a rate.
type TrafficLimit struct {
	BytesPerSec uint64
	// Burst is how much may go out at once after a pause; 0 picks
	// DefaultEgressBurst.
	Burst uint64
}

// MinEgressBurst is the smallest burst: a few GSO packets (64 KiB each
// on loopback).
const MinEgressBurst = 256 << 10

// DefaultEgressBurst is the burst of a rate: 250 ms of it, at least
// MinEgressBurst. A TCP sender whose segment was dropped with nothing in
// flight waits for its probe timer (200 ms at least) before it tries
// again; a burst that covers that wait lets it catch up afterwards, so
// that it gets its rate rather than half of it.
func DefaultEgressBurst(bytesPerSec uint64) uint64 {
	return max(bytesPerSec/4, MinEgressBurst)
}

// Layout of a counts entry (per CPU): u64 tx_bytes, tx_packets,
// rx_bytes, rx_packets.
const trafficCountSize = 32

// Layout of a limits entry (a hash, key u32 uid):
//
//	0  u64 rate       bytes per second
//	8  u64 burst_ns   the burst in ns at the rate: how far behind now the
//	                  virtual clock may lag (the credit after a pause)
//	16 u64 next_ns    virtual clock: when everything let through so far
//	                  would have gone out at the rate (CLOCK_MONOTONIC)
//	24 u64 dropped    packets dropped
const trafficLimitSize = 32

// encodeTrafficLimit returns the limits entry of l (the clock at 0: the
// first packet gets the whole burst).
func encodeTrafficLimit(l TrafficLimit) []byte {
	b := make([]byte, trafficLimitSize)
	burst := l.Burst
	if burst == 0 {
		burst = DefaultEgressBurst(l.BytesPerSec)
	}
	rate := max(l.BytesPerSec, 1)
	ns := burst * uint64(time.Second) / rate
	if burst > (1<<64-1)/uint64(time.Second) {
		ns = uint64(time.Hour)
	}
	binary.NativeEndian.PutUint64(b[0:], rate)
	binary.NativeEndian.PutUint64(b[8:], ns)
	return b
}

// sumTrafficCounts adds the per-CPU cells of one uid.
func sumTrafficCounts(cells []trafficCell) TrafficCounts {
	var c TrafficCounts
	for _, x := range cells {
		c.TxBytes += x.TxBytes
		c.TxPackets += x.TxPackets
		c.RxBytes += x.RxBytes
		c.RxPackets += x.RxPackets
	}
	return c
}

// trafficCell is one CPU's counts of a uid, as the kernel map holds them.
type trafficCell struct {
	TxBytes, TxPackets, RxBytes, RxPackets uint64
}

// TrafficRates turns two readings of the totals of a uid, dt apart, into
// bytes per second out and in. A total that went down (the hook was
// reloaded, the entry evicted) counts as a fresh start.
func TrafficRates(prev, cur TrafficCounts, dt time.Duration) (tx, rx float64) {
	if dt <= 0 {
		return 0, 0
	}
	d := func(a, b uint64) float64 {
		if b < a {
			return float64(b)
		}
		return float64(b - a)
	}
	s := dt.Seconds()
	return d(prev.TxBytes, cur.TxBytes) / s, d(prev.RxBytes, cur.RxBytes) / s
}
