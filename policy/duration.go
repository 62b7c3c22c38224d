package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration accepts Go durations ("90s", "1h30m") and whole days
// ("2d", "1d12h"), which admins write for long runners.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	orig := s // for messages: s loses its days below
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: days must be a whole number", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: use a number with a unit, such as \"90s\", \"5m\", \"2h\" or \"1d\"", orig)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", orig)
	}
	if d > math.MaxInt64-days { // "65535d2562047h": each part fits, the sum wraps negative
		return 0, fmt.Errorf("duration %q is too long", orig)
	}
	return days + d, nil
}
