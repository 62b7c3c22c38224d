package policy

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// What the listen and connect blocks of capabilities share: their port
// syntax, and the uids a class governs (AccountIndex, GovernedUIDs and
// FirstClassUIDs in schema.go), which their kernel hooks see.

// parsePorts parses the PORTS of pattern s: a port or a range LOW-HIGH
// (the patterns of listen and connect blocks alike).
func parsePorts(s, ports string) (uint16, uint16, error) {
	lo, hi, isRange := strings.Cut(ports, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := parsePort(lo)
	h, err2 := parsePort(hi)
	switch {
	case err1 != nil:
		return 0, 0, fmt.Errorf("%q: %v", s, err1)
	case err2 != nil:
		return 0, 0, fmt.Errorf("%q: %v", s, err2)
	case h < l:
		return 0, 0, fmt.Errorf("%q: the port range is empty (%d > %d)", s, l, h)
	}
	return l, h, nil
}

func parsePort(s string) (uint16, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535; port 0 binds are never refused)", s)
	}
	return uint16(v), nil
}

// RulesReading returns the rules whose condition reads the variable.
func (p *Policy) RulesReading(name string) []*Rule {
	var out []*Rule
	for _, r := range p.Rules {
		if r.When == nil {
			continue
		}
		for _, v := range r.When.Vars {
			if v.Name == name {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// AccountIndex resolves the user and group names of classes to uids.
type AccountIndex interface {
	// UID returns the uid of the account called user.
	UID(user string) (uint32, bool)
	// GroupMembers returns the uids of the accounts in the group (primary
	// or supplementary).
	GroupMembers(group string) []uint32
}

// protectedUIDs returns the uids no listen or connect block governs: uid
// 0, the uids below min_uid and protect's accounts (names resolved
// through idx), normalized.
func (p *Policy) protectedUIDs(idx AccountIndex) uidSet {
	out := uidSet{{0, 0}}
	if p.MinUID > 0 {
		out = append(out, UIDRange{0, p.MinUID - 1})
	}
	out = append(out, membersUIDs(&p.Protect.Members, idx)...)
	return out.normalize()
}

// uidSet is a set of uids as ranges; normalize sorts and merges them.
type uidSet []UIDRange

func membersUIDs(m *Members, idx AccountIndex) uidSet {
	out := append(uidSet(nil), m.UIDs...)
	if idx == nil {
		return out
	}
	for name := range m.Users {
		if uid, ok := idx.UID(name); ok {
			out = append(out, UIDRange{uid, uid})
		}
	}
	for name := range m.Groups {
		for _, uid := range idx.GroupMembers(name) {
			out = append(out, UIDRange{uid, uid})
		}
	}
	return out
}

func (s uidSet) normalize() uidSet {
	if len(s) == 0 {
		return nil
	}
	s = append(uidSet(nil), s...)
	sort.Slice(s, func(i, j int) bool { return s[i].Lo < s[j].Lo })
	out := s[:1]
	for _, r := range s[1:] {
		last := &out[len(out)-1]
		if uint64(r.Lo) <= uint64(last.Hi)+1 {
			last.Hi = max(last.Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// minus returns s without the uids of t; both are normalized.
func (s uidSet) minus(t uidSet) uidSet {
	var out uidSet
	for _, r := range s {
		lo := uint64(r.Lo)
		for _, x := range t {
			if uint64(x.Hi) < lo || x.Lo > r.Hi {
				continue
			}
			if uint64(x.Lo) > lo {
				out = append(out, UIDRange{uint32(lo), x.Lo - 1})
			}
			lo = uint64(x.Hi) + 1
		}
		if lo <= uint64(r.Hi) && lo <= math.MaxUint32 {
			out = append(out, UIDRange{uint32(lo), r.Hi})
		}
	}
	return out
}
