package report

import (
	"strings"
	"testing"
	"time"
	"unicode"
)

// hostileText is what a customer can put in a comm, an exe path or argv.
const hostileText = "x\x1b]0;pwned\x07\x1b[2J\nBcc: victim@example.jp\r\n\u202egpj.exe"

// TestMailBodyEscapesCustomerText: every embedded template, rendered with
// a process whose exe, comm and command line hold escape sequences and
// newlines, gives a body with no control character but its own line
// ends and no line the customer wrote; the sample's clean text (the
// control) prints unchanged.
func TestMailBodyEscapesCustomerText(t *testing.T) {
	ts, err := LoadMailTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range ts.Names() {
		name, lang, _ := splitTemplateKey(key)
		mt, _ := ts.Get(name, lang)
		d := sampleMailData(lang)
		p := *d.Process
		p.Exe, p.Comm, p.Cmdline = "/tmp/"+hostileText, hostileText, "php "+hostileText
		clean := *d.Process
		d.Process = &p
		d.Processes = []ProcessInfo{p, clean}
		d.Values = map[string]any{"proc.exe": p.Exe, "proc.cpu_percent": 99.5}
		d.Digest.Processes = append(d.Digest.Processes, DigestProc{PID: 7, Comm: hostileText, Exe: p.Exe, Cmdline: p.Cmdline, Count: 1})
		before := *d.Process
		subject, body, err := mt.Render(d)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if *d.Process != before {
			t.Errorf("%s: Render changed its data", key)
		}
		for _, s := range []string{subject, body} {
			for _, r := range s {
				if r != '\n' && (unicode.IsControl(r) || r == '\u202e') {
					t.Errorf("%s: rendered mail holds %U:\n%s", key, r, s)
					break
				}
			}
		}
		for line := range strings.Lines(body) {
			if strings.HasPrefix(strings.TrimSpace(line), "Bcc:") {
				t.Errorf("%s: a line of the body is the customer's: %q", key, line)
			}
		}
		if !strings.Contains(body, `x\x1b]0;pwned\x07\x1b[2J\nBcc: victim@example.jp\r\n\u202egpj.exe`) {
			t.Errorf("%s: the hostile text is not shown escaped:\n%s", key, body)
		}
		if !strings.Contains(body, "php rebuild-index.php") { // the control: clean text unchanged
			t.Errorf("%s: clean command line changed:\n%s", key, body)
		}
	}
}

// TestComposeMailCannotBeForgedByData: the composed message of a hostile
// notice has exactly the headers guardd writes.
func TestComposeMailCannotBeForgedByData(t *testing.T) {
	ts, err := LoadMailTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := ts.Get("generic", "en")
	d := sampleMailData("en")
	d.Process.Comm, d.Process.Exe = hostileText, hostileText
	subject, body, err := mt.Render(d)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(ComposeMail("guardd@h", []string{"a@b"}, subject, body, time.Unix(0, 0), "id@h", nil))
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	if strings.Contains(head, "Bcc") || strings.Count(msg, "\r\nBcc:") > 0 {
		t.Errorf("forged header:\n%s", msg)
	}
	if strings.ContainsAny(msg, "\x1b\x07") {
		t.Errorf("raw control characters in the message:\n%q", msg)
	}
}
