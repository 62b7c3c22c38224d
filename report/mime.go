package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"
)

// MailHeader is one extra header of a composed mail.
type MailHeader struct{ Name, Value string }

// ComposeMail builds an RFC 5322 message with a UTF-8 text body: the
// subject is RFC 2047 encoded when it is not ASCII (so a Japanese subject
// arrives readable through any relay), the body base64 when it is not
// 7-bit clean, every line ends in CRLF. Bcc recipients are not named in
// it: they go in the envelope only.
func ComposeMail(from string, to []string, subject, body string, date time.Time, messageID string, extra []MailHeader) []byte {
	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(foldHeader(name, value))
		b.WriteString("\r\n")
	}
	header("From", from)
	header("To", strings.Join(to, ", "))
	header("Subject", encodeHeaderText(subject))
	header("Date", date.Format(time.RFC1123Z))
	header("Message-ID", "<"+messageID+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=UTF-8")
	// RFC 3834: an automatic message; autoresponders must not answer it.
	header("Auto-Submitted", "auto-generated")
	header("X-Auto-Response-Suppress", "All")
	header("Precedence", "bulk")
	for _, h := range extra {
		header(h.Name, encodeHeaderText(h.Value))
	}
	body = strings.ToValidUTF8(body, "\uFFFD")
	body = strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\r", "\n")
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	if sevenBitClean(body) {
		header("Content-Transfer-Encoding", "7bit")
		b.WriteString("\r\n")
		for line := range strings.SplitSeq(strings.TrimSuffix(body, "\n"), "\n") {
			b.WriteString(line)
			b.WriteString("\r\n")
		}
		return b.Bytes()
	}
	header("Content-Transfer-Encoding", "base64")
	b.WriteString("\r\n")
	enc := base64.StdEncoding.EncodeToString([]byte(body))
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
	return b.Bytes()
}

// sevenBitClean reports text that can go as 7bit: ASCII, lines of at
// most 998 octets (RFC 5322 2.1.1).
func sevenBitClean(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c == 0 {
			return false
		}
		if c == '\n' {
			n = 0
			continue
		}
		if n++; n > 900 {
			return false
		}
	}
	return true
}

// encodeHeaderText makes an unstructured header value safe: control
// characters (a CR/LF would inject headers) become spaces, and non-ASCII
// text is RFC 2047 B-encoded as UTF-8.
func encodeHeaderText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return encodeWords(s)
		}
	}
	return s
}

// encodeWords B-encodes s as encoded-words of 60 characters or fewer
// (RFC 2047 2), never splitting a UTF-8 character between two words.
func encodeWords(s string) string {
	// 36 bytes of text make a 60-character word: with "Subject: " in
	// front the first line still stays within RFC 2047's 76 characters.
	const maxRaw = 36
	var words []string
	for len(s) > 0 {
		n := min(len(s), maxRaw)
		for n < len(s) && !utf8.RuneStart(s[n]) {
			n--
		}
		words = append(words, mime.BEncoding.Encode("UTF-8", s[:n]))
		if !strings.HasPrefix(words[len(words)-1], "=?") {
			// mime leaves ASCII alone; force the encoding so that the
			// whitespace between encoded words is not kept.
			words[len(words)-1] = "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(s[:n])) + "?="
		}
		s = s[n:]
	}
	return strings.Join(words, " ")
}

// foldHeader writes "Name: value", folding at spaces so that lines stay
// under 78 characters where the value allows (RFC 5322 2.2.3).
func foldHeader(name, value string) string {
	line := name + ":"
	var out strings.Builder
	for _, w := range strings.Split(value, " ") {
		if len(line)+1+len(w) > 76 && len(line) > len(name)+1 {
			out.WriteString(line)
			out.WriteString("\r\n")
			line = ""
		}
		line += " " + w
	}
	out.WriteString(line)
	return out.String()
}

// MessageID returns a Message-ID (without angle brackets) unique to id on
// host.
func MessageID(id, host string) string {
	if host == "" || strings.ContainsAny(host, "<>@ \r\n") {
		host = "localhost"
	}
	return fmt.Sprintf("%s.guardd@%s", id, host)
}
