package platform

import (
	"bytes"
	"errors"
	"fmt"
)

// IDs holds the credentials of a process from /proc/PID/status.
type IDs struct {
	UID, EUID uint32 // real and effective uid
	GID, EGID uint32 // real and effective gid
}

// ParseStatusIDs reads the Uid: and Gid: lines of /proc/PID/status. The
// real uid comes from here, not from the owner of /proc/PID: a process that
// makes itself non-dumpable shows its /proc files as root's.
func ParseStatusIDs(b []byte) (IDs, error) {
	var ids IDs
	var haveUID, haveGID bool
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("Uid:")):
			r, e, err := twoIDs(line[4:])
			if err != nil {
				return ids, fmt.Errorf("status Uid: %w", err)
			}
			ids.UID, ids.EUID, haveUID = r, e, true
		case bytes.HasPrefix(line, []byte("Gid:")):
			r, e, err := twoIDs(line[4:])
			if err != nil {
				return ids, fmt.Errorf("status Gid: %w", err)
			}
			ids.GID, ids.EGID, haveGID = r, e, true
		}
		if haveUID && haveGID {
			return ids, nil
		}
	}
	return ids, errors.New("status: no Uid/Gid lines")
}

func twoIDs(b []byte) (uint32, uint32, error) {
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, 0, errors.New("too few fields")
	}
	r, ok1 := parseUint(f[0])
	e, ok2 := parseUint(f[1])
	if !ok1 || !ok2 || r > 1<<32-1 || e > 1<<32-1 {
		return 0, 0, fmt.Errorf("bad ids %q", truncate(b))
	}
	return uint32(r), uint32(e), nil
}

// ParseCmdline turns the NUL-separated /proc/PID/cmdline into one line:
// separators and control characters become spaces, and the result is cut
// at max bytes.
func ParseCmdline(b []byte, max int) string {
	b = bytes.TrimRight(b, "\x00")
	if max < 0 {
		max = 0 // a negative bound would panic in the slice below
	}
	if len(b) > max {
		b = b[:max]
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		out[i] = c
	}
	return string(out)
}

// deletedSuffix is what readlink(/proc/PID/exe) appends when the executable
// was unlinked after exec (fs/d_path.c).
const deletedSuffix = " (deleted)"

// ParseExeLink splits a readlink(/proc/PID/exe) result into the path and
// whether the file was deleted since the process started.
func ParseExeLink(link string) (path string, deleted bool) {
	if len(link) > len(deletedSuffix) && link[len(link)-len(deletedSuffix):] == deletedSuffix {
		return link[:len(link)-len(deletedSuffix)], true
	}
	return link, false
}
