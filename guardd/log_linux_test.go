package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPty returns a pseudo-terminal's master and slave.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	// Raw output: the terminal passes bytes on as written (no \n -> \r\n).
	tio, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err == nil {
		tio.Oflag &^= unix.OPOST
		unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, tio)
	}
	return m, s
}

// sgr matches the colour sequences tint writes itself.
var sgr = regexp.MustCompile(`\x1b\[[0-9;]*m`)

type hostileError struct{}

func (hostileError) Error() string { return "open /tmp/\x1b[2J\nfake: line" }

// TestLogOnTerminalEscapesCustomerText: the coloured log on a terminal
// (and the plain text log) write a customer's escape sequences and
// newlines visibly, one line per record; a clean value is printed as
// before (the control).
func TestLogOnTerminalEscapesCustomerText(t *testing.T) {
	master, slave := openPty(t)
	if !isTerminal(slave) {
		t.Fatal("a pseudo-terminal is not taken for a terminal")
	}
	var plain bytes.Buffer
	for _, tc := range []struct {
		name string
		w    func() []byte
	}{
		{"tint", func() []byte {
			log, err := buildLogger("text", slog.LevelInfo, slave)
			if err != nil {
				t.Fatal(err)
			}
			logHostile(log)
			buf := make([]byte, 64<<10)
			n, err := master.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			return buf[:n]
		}},
		{"text", func() []byte {
			log, err := buildLogger("text", slog.LevelInfo, &plain)
			if err != nil {
				t.Fatal(err)
			}
			logHostile(log)
			return plain.Bytes()
		}},
	} {
		out := tc.w()
		text := string(sgr.ReplaceAll(out, nil))
		if strings.Count(text, "\n") != 1 || !strings.HasSuffix(text, "\n") {
			t.Errorf("%s: the record is not one line:\n%q", tc.name, text)
		}
		for _, r := range strings.TrimSuffix(text, "\n") {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u202e' {
				t.Errorf("%s: raw %U reaches the terminal:\n%q", tc.name, r, text)
			}
		}
		for _, want := range []string{`\x1b]0;pwned`, `\x1b[2J`, `\nBcc: x@y`, `comm=php-fpm`, `user=alice`, `\u202e`, `\x7f`} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: %q not shown:\n%s", tc.name, want, text)
			}
		}
		if strings.Contains(text, "\x1b]") || strings.Contains(text, "\x1b[2J") {
			t.Errorf("%s: an escape sequence survived:\n%q", tc.name, out)
		}
	}
}

func logHostile(log *slog.Logger) {
	log.Info("killed \x1b[2J",
		"comm", "php-fpm", "user", "alice", // clean: unchanged
		"exe", "/tmp/\x1b]0;pwned\x07\nBcc: x@y",
		"literal", `a b \x1b[2J`, // text that tint would turn into a raw ESC
		"argv", []string{"x\x1b[2J", "\u202egpj"},
		"del", "a\x7fb",
		"err", errors.Join(hostileError{}))
}
