//go:build linux

package tests

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// What a hostile customer names its process: a window-title sequence, a
// clear-screen sequence and a newline followed by a mail header, in the
// exe path, the comm and argv.
const (
	hostileExeName = "evil\x1b]0;pwned\x07\x1b[2J\nBcc: x@y"
	hostileComm    = "\x1b]0;pwned\x07\n" // 11 bytes: comm keeps 15
	hostileArg     = "\x1b[2J\nBcc: x@y"
)

// rawControls returns the control characters in s other than its line
// ends.
func rawControls(s string) []rune {
	var out []rune
	for _, r := range s {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			out = append(out, r)
		}
	}
	return out
}

// TestHostileNamesAreEscaped: a process whose exe path, comm and argv hold
// terminal escape sequences and a newline with "Bcc: x@y" after it. guardd
// top, guardd explain and the customer mail show them escaped (no raw
// ESC, no line the customer wrote, no extra recipient); a clean process
// beside it (the control) is printed unchanged.
func TestHostileNamesAreEscaped(t *testing.T) {
	t.Parallel()
	srv := StartMailServer(t, "")
	u := NewUser(t)
	exe := filepath.Join(ExecDir(t), hostileExeName)
	CopyFile(t, offenderBin, exe, 0o755)
	hostile := StartOffenderSpec(t, u, OffenderSpec{Exe: exe, Args: []string{"-name", hostileComm, "sleep", "esc-marker", hostileArg}})
	clean := StartOffender(t, u, "sleep", "esc-marker", "clean-control")
	g := StartGuardd(t, Class(u)+`rule "named" {
  class    = "c"
  when     = strcontains(proc.cmdline, "esc-marker")
  cooldown = "1h"
  report {}
  notify {}
}
`+strings.Replace(mailReport(srv.Addr, ""), `language  = "ja"`, `language  = "en"`, 1))
	g.WaitAudit(t, Action("named", "report", "done", hostile.PID), Deadline)
	g.WaitAudit(t, Action("named", "report", "done", clean.PID), Deadline)

	// guardd top: its own sample of the host (this policy serves no
	// status page) and the audit log's recent actions.
	top, errOut, code := RunGuardd(t, "top", "--once", "--policy", g.PolicyPath)
	if code != 0 {
		t.Fatalf("guardd top: exit %d\n%s", code, errOut)
	}
	checkEscaped(t, "guardd top", top)
	// The recent actions come from this daemon's audit log (the process
	// lists are the whole host's, where other tests' processes may
	// outrank these).
	for _, want := range []string{
		`named\s+report\s+done\s+` + u.Name + `\s+` + strconv.Itoa(hostile.PID) + `\s+` + regexp.QuoteMeta(`\x1b]0;pwned\x07\n`) + `\n`,
		`named\s+report\s+done\s+` + u.Name + `\s+` + strconv.Itoa(clean.PID) + `\s+offender\n`, // the control
	} {
		if !regexp.MustCompile(want).MatchString(top) {
			t.Errorf("guardd top has no line matching %s:\n%s", want, top)
		}
	}

	out, errOut, code := RunGuardd(t, "explain", "--policy", g.PolicyPath, "--window", "200ms", strconv.Itoa(hostile.PID))
	if code != 0 {
		t.Fatalf("guardd explain: exit %d\n%s%s", code, out, errOut)
	}
	checkEscaped(t, "guardd explain", out)
	// (The sampler already turns control characters of a command line
	// into spaces.)
	for _, want := range []string{`evil\x1b]0;pwned\x07\x1b[2J\nBcc: x@y`, `"\x1b]0;pwned\x07\n"`, "esc-marker"} {
		if !strings.Contains(out, want) {
			t.Errorf("guardd explain lacks %q:\n%s", want, out)
		}
	}
	ctl, errOut, code := RunGuardd(t, "explain", "--policy", g.PolicyPath, "--window", "200ms", strconv.Itoa(clean.PID))
	if code != 0 {
		t.Fatalf("guardd explain (control): exit %d\n%s%s", code, ctl, errOut)
	}
	if !regexp.MustCompile(`(?m)^exe\s+`+regexp.QuoteMeta(offenderBin)+`$`).MatchString(ctl) || !strings.Contains(ctl, `"`+strings.Join(clean.Argv, " ")+`"`) {
		t.Errorf("guardd explain of a clean process does not show its exe %s and command line %q unchanged:\n%s", offenderBin, clean.Argv, ctl)
	}

	// The mail: one to the customer (and the configured Bcc), covering
	// the hostile process, the clean one in its process list.
	g.WaitAudit(t, Action("named", "notify", "done", hostile.PID), Deadline)
	m := srv.WaitMails(t, 1, Deadline)[0]
	m.Decode(t)
	if got := strings.Join(m.Rcpt, ","); got != u.Name+"@example.jp,abuse@example.jp" {
		t.Errorf("envelope recipients %s, want only the customer and the configured Bcc", got)
	}
	if m.Header.Get("Bcc") != "" {
		t.Errorf("the mail has a Bcc header %q", m.Header.Get("Bcc"))
	}
	for line := range strings.Lines(m.Body) {
		if strings.HasPrefix(strings.TrimSpace(line), "Bcc:") {
			t.Errorf("a line of the mail body is the customer's: %q", line)
		}
	}
	if c := rawControls(strings.ReplaceAll(m.Body, "\r\n", "\n")); len(c) > 0 {
		t.Errorf("the mail body holds raw control characters %q:\n%s", c, m.Body)
	}
	for _, want := range []string{`\x1b]0;pwned\x07`, `\x1b[2J\nBcc: x@y`, "/offender sleep esc-marker"} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("the mail body lacks %q:\n%s", want, m.Body)
		}
	}
}

func checkEscaped(t *testing.T, what, out string) {
	t.Helper()
	if c := rawControls(out); len(c) > 0 {
		t.Errorf("%s prints raw control characters %q:\n%q", what, c, out)
	}
	for line := range strings.Lines(out) {
		if strings.HasPrefix(strings.TrimSpace(line), "Bcc:") {
			t.Errorf("%s: a line is the customer's: %q", what, line)
		}
	}
}
