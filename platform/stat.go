package platform

import (
	"bytes"
	"errors"
	"fmt"
)

// Stat is the part of Linux /proc/PID/stat (proc(5)) that guardd uses.
type Stat struct {
	PID       int32
	Comm      []byte // aliases the parsed buffer; copy before keeping it
	State     byte
	PPID      int32
	Flags     uint32 // PF_* flags; PFKthread marks kernel threads
	UTime     uint64 // clock ticks in user mode, all threads
	STime     uint64 // clock ticks in kernel mode, all threads
	Nice      int32  // -20..19
	Threads   int32
	StartTime uint64 // clock ticks after boot
	RSSPages  int64  // resident pages
}

// PFKthread is the kernel's PF_KTHREAD task flag (include/linux/sched.h).
const PFKthread = 0x00200000

var errStatShort = errors.New("stat: too few fields")

// ParseStat parses the contents of /proc/PID/stat into s. The command name
// sits in parentheses and may itself contain ')', spaces, newlines and bytes
// that are not UTF-8, so it runs from the first '(' to the LAST ')'.
//
// Hand-written rather than strings.Fields: it runs for every process on
// every tick and must not allocate.
func ParseStat(b []byte, s *Stat) error {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return errors.New("stat: no (comm)")
	}
	pid, ok := parseInt(bytes.TrimSpace(b[:open]))
	if !ok || pid <= 0 || pid > 1<<31-1 {
		return fmt.Errorf("stat: bad pid %q", truncate(b[:open]))
	}
	s.PID = int32(pid)
	s.Comm = b[open+1 : closing]

	// Fields after the comm, numbered as in proc(5): field 3 is the state.
	rest := b[closing+1:]
	field := 2
	var err error
	for len(rest) > 0 && field < 24 {
		// Skip the single separating space; tolerate runs of spaces.
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\n') {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			break
		}
		end := tokenEnd(rest)
		tok := rest[:end]
		rest = rest[end:]
		field++
		switch field {
		case 3:
			if len(tok) != 1 {
				return fmt.Errorf("stat: bad state %q", truncate(tok))
			}
			s.State = tok[0]
		case 4:
			s.PPID, err = int32Field(tok, "ppid")
		case 9:
			var v uint64
			v, err = uintField(tok, "flags")
			s.Flags = uint32(v)
		case 14:
			s.UTime, err = uintField(tok, "utime")
		case 15:
			s.STime, err = uintField(tok, "stime")
		case 19:
			s.Nice, err = int32Field(tok, "nice")
		case 20:
			s.Threads, err = int32Field(tok, "num_threads")
		case 22:
			s.StartTime, err = uintField(tok, "starttime")
		case 24:
			var v int64
			v, ok = parseInt(tok)
			if !ok {
				return fmt.Errorf("stat: bad rss %q", truncate(tok))
			}
			s.RSSPages = v
		}
		if err != nil {
			return err
		}
	}
	if field < 24 {
		return errStatShort
	}
	return nil
}

// tokenEnd returns the index of the first space or newline in b, or
// len(b). A plain loop: bytes.IndexAny is several times slower on these
// short tokens, and this runs for ~20 fields of every process every tick.
func tokenEnd(b []byte) int {
	for i, c := range b {
		if c == ' ' || c == '\n' {
			return i
		}
	}
	return len(b)
}

func uintField(tok []byte, name string) (uint64, error) {
	v, ok := parseUint(tok)
	if !ok {
		return 0, fmt.Errorf("stat: bad %s %q", name, truncate(tok))
	}
	return v, nil
}

func int32Field(tok []byte, name string) (int32, error) {
	v, ok := parseInt(tok)
	if !ok || v < -1<<31 || v > 1<<31-1 {
		return 0, fmt.Errorf("stat: bad %s %q", name, truncate(tok))
	}
	return int32(v), nil
}

// parseUint parses a decimal without allocating (strconv needs a string).
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	u, ok := parseUint(b)
	if !ok || u > 1<<63 || (!neg && u == 1<<63) {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// truncate keeps error messages short when the input is hostile.
func truncate(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "..."
	}
	return string(b)
}
