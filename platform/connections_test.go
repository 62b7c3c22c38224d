package platform

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestParseDiagOwners(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	est := func(uid uint32) []byte {
		return nlmsg(diagSockDiagByFamily, 2, 7, diagMsg(diagAfInet, diagTcpEstablished, lo, 40000, uid, 1))
	}
	done := nlmsg(diagNlmsgDone, 2, 7, errno(0))
	for _, tc := range []struct {
		name, want string
		b          []byte
	}{
		{"two and done", "1001/1 1002/1 done", cat(est(1001), est(1002), done)},
		{"stale sequence skipped", "1001/1 more", cat(nlmsg(diagSockDiagByFamily, 2, 6, diagMsg(diagAfInet, 1, lo, 1, 7, 1)), est(1001))},
		{"short inet_diag_msg", "error: inet_diag_msg of 10 bytes", nlmsg(diagSockDiagByFamily, 2, 7, make([]byte, 10))},
		{"length past the end", "error: out of bounds", est(1001)[:40]},
		{"interrupted", "error: interrupted", nlmsg(diagSockDiagByFamily, diagNlmFDumpIntr, 7, diagMsg(diagAfInet, 1, lo, 1, 1, 1))},
		{"dump failed", "error: errno 5", nlmsg(diagNlmsgDone, 2, 7, errno(-5))},
		{"unknown type", "error: unexpected message type 99", nlmsg(99, 2, 7, nil)},
		{"trailing bytes", "1001/1 error: trailing", cat(est(1001), []byte{1, 2, 3})},
	} {
		var got []string
		isDone, err := ParseDiagOwners(tc.b, 7, func(uid uint32, state uint8) { got = append(got, fmt.Sprintf("%d/%d", uid, state)) })
		switch {
		case err != nil:
			got = append(got, "error: "+err.Error())
		case isDone:
			got = append(got, "done")
		default:
			got = append(got, "more")
		}
		if s := strings.Join(got, " "); !strings.HasPrefix(s, strings.Fields(tc.want)[0]) || !containsAll(s, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, s, tc.want)
		}
	}
}

// containsAll reports whether every word of want but "error:" is in got.
func containsAll(got, want string) bool {
	for _, w := range strings.Fields(want) {
		if w != "error:" && !strings.Contains(got, w) {
			return false
		}
	}
	return true
}

func FuzzParseDiagOwners(f *testing.F) {
	lo := netip.MustParseAddr("127.0.0.1")
	f.Add(cat(nlmsg(diagSockDiagByFamily, 2, 7, diagMsg(diagAfInet, 1, lo, 1, 1001, 1)), nlmsg(diagNlmsgDone, 2, 7, errno(0))))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseDiagOwners(b, 7, func(uint32, uint8) {})
	})
}
