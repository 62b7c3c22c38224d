package platform

import (
	"bytes"
	"fmt"
)

// NetDev is one network interface's counters from /proc/net/dev (all
// counts since the interface appeared; they wrap only at 2^64).
type NetDev struct {
	Name      string
	RxBytes   uint64 // bytes received
	RxPackets uint64
	RxErrors  uint64
	RxDropped uint64
	TxBytes   uint64 // bytes sent
	TxPackets uint64
	TxErrors  uint64
	TxDropped uint64
}

// ParseNetDev parses /proc/net/dev: two header lines, then
// "NAME: rx-bytes rx-packets rx-errs rx-drop fifo frame compressed multicast
// tx-bytes tx-packets tx-errs tx-drop fifo colls carrier compressed" per
// interface (net/core/net-procfs.c). Interface names cannot contain ':'
// or spaces (dev_valid_name), so the name ends at the first ':'. Lines
// that do not parse are skipped and counted.
func ParseNetDev(b []byte) (devs []NetDev, skipped int, err error) {
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) < 2 || !bytes.Contains(lines[0], []byte("Receive")) || !bytes.Contains(lines[1], []byte("bytes")) {
		return nil, 0, fmt.Errorf("net/dev: no header")
	}
	for _, line := range lines[2:] {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		name, rest, ok := bytes.Cut(line, []byte(":"))
		name = bytes.TrimSpace(name)
		f := bytes.Fields(rest)
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") || len(f) < 16 {
			skipped++
			continue
		}
		var v [16]uint64
		good := true
		for i := range v {
			if v[i], ok = parseUint(f[i]); !ok {
				good = false
				break
			}
		}
		if !good {
			skipped++
			continue
		}
		devs = append(devs, NetDev{Name: string(name),
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11]})
	}
	return devs, skipped, nil
}

// NetRate is an interface's traffic between two readings.
type NetRate struct {
	Name          string
	RxBytesPerSec float64
	TxBytesPerSec float64
}

// NetRates computes per-interface rates from two readings secs apart.
// Interfaces missing from either reading, or whose counters went back
// (the interface was re-created), are left out rather than shown with a
// made-up rate.
func NetRates(prev, cur []NetDev, secs float64) []NetRate {
	if secs <= 0 {
		return nil
	}
	old := make(map[string]NetDev, len(prev))
	for _, d := range prev {
		old[d.Name] = d
	}
	var out []NetRate
	for _, d := range cur {
		p, ok := old[d.Name]
		if !ok || d.RxBytes < p.RxBytes || d.TxBytes < p.TxBytes {
			continue
		}
		out = append(out, NetRate{Name: d.Name,
			RxBytesPerSec: float64(d.RxBytes-p.RxBytes) / secs,
			TxBytesPerSec: float64(d.TxBytes-p.TxBytes) / secs})
	}
	return out
}
