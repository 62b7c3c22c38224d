// Package printable makes customer-controlled text (comm, cmdline, exe
// paths, file and user names) safe to print on a terminal, in a log read on
// a TTY and in a mail body. It is a leaf package, imported by guardd (the
// terminal commands and the log handler) and report (mail, the status
// text), so neither has to import the other for it and platform stays free
// of it.
package printable

import "unicode/utf8"

// Escape returns s with every character a terminal or a mail reader could
// act on written out visibly, and everything else unchanged:
//
//   - C0 controls, DEL and C1 controls (U+0080..U+009F): \n, \r, \t, or
//     \xHH for C0 and DEL (\x1b for ESC), \u00HH for C1;
//   - bytes that are not UTF-8: \xHH;
//   - bidi embeddings, overrides and isolates (U+202A..U+202E,
//     U+2066..U+2069), which reorder what a reader sees: \u202e.
//
// A backslash is left alone, so clean text prints unchanged; a literal
// "\x1b" in the input is text, never an escape sequence. When nothing needs
// escaping, s itself is returned without allocating.
func Escape(s string) string {
	i := firstUnsafe(s)
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	return string(appendEscaped(b, s[i:]))
}

// Append appends Escape(s) to dst.
func Append(dst []byte, s string) []byte {
	i := firstUnsafe(s)
	if i < 0 {
		return append(dst, s...)
	}
	dst = append(dst, s[:i]...)
	return appendEscaped(dst, s[i:])
}

// Clean reports whether s prints unchanged (Escape(s) == s).
func Clean(s string) bool { return firstUnsafe(s) < 0 }

// firstUnsafe returns the index of the first byte that starts something
// to escape, or -1.
func firstUnsafe(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, n) {
			return i
		}
		i += n
	}
	return -1
}

// unsafeRune reports a non-ASCII rune (of n bytes in the input) to escape:
// invalid UTF-8 (RuneError of one byte), C1 controls and bidi controls.
func unsafeRune(r rune, n int) bool {
	switch {
	case r == utf8.RuneError && n == 1:
		return true
	case r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

const hexDigits = "0123456789abcdef"

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\n':
				b = append(b, `\n`...)
			case c == '\r':
				b = append(b, `\r`...)
			case c == '\t':
				b = append(b, `\t`...)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		case unsafeRune(r, n):
			// Every rune escaped here is below U+10000: four digits.
			b = append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return b
}
