package report

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// MapLineError is a bad line of a mail map.
type MapLineError struct {
	Line int // 1-based
	Err  error
}

func (e *MapLineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *MapLineError) Unwrap() error { return e.Err }

// ParseMailMap parses a map of customer addresses, aliases(5) style: one
// account per line, "user: address[, address...]" (or "user address"),
// '#' starts a comment. Every bad line is reported with its number; the
// map holds the good ones.
func ParseMailMap(b []byte) (map[string][]string, []error) {
	out := map[string][]string{}
	var errs []error
	for n := 1; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		user, rest, ok := strings.Cut(s, ":")
		if !ok {
			user, rest, ok = strings.Cut(s, " ")
			if !ok {
				user, rest, ok = strings.Cut(s, "\t")
			}
		}
		user, rest = strings.TrimSpace(user), strings.TrimSpace(rest)
		if !ok || user == "" || rest == "" || strings.ContainsAny(user, " \t") {
			errs = append(errs, &MapLineError{n, errors.New("want \"user: address[, address...]\"")})
			continue
		}
		if _, dup := out[user]; dup {
			errs = append(errs, &MapLineError{n, fmt.Errorf("%s is already mapped", quoteTrunc(user))})
			continue
		}
		var addrs []string
		bad := false
		for a := range strings.SplitSeq(rest, ",") {
			a = strings.TrimSpace(a)
			if err := checkAddress(a); err != nil {
				errs = append(errs, &MapLineError{n, err})
				bad = true
				break
			}
			addrs = append(addrs, a)
		}
		if !bad {
			out[user] = addrs
		}
	}
	return out, errs
}

// checkAddress accepts a bare ASCII addr-spec that cannot break a header
// or an SMTP command.
func checkAddress(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' || c == ',' {
			return fmt.Errorf("%s is not a plain ASCII address", quoteTrunc(s))
		}
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || !strings.Contains(s, "@") {
		return fmt.Errorf("%s is not a mail address", quoteTrunc(s))
	}
	return nil
}

// CheckAddress reports why s cannot be a recipient, or nil.
func CheckAddress(s string) error { return checkAddress(s) }

func quoteTrunc(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return fmt.Sprintf("%q", s)
}
