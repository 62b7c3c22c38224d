package printable

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"php-fpm: pool alice", "php-fpm: pool alice"},
		{"/home/alice/bin/ä日本語 \\x1b", "/home/alice/bin/ä日本語 \\x1b"}, // a literal backslash stays text
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"x\nBcc: x@y\r\n", `x\nBcc: x@y\r\n`},
		{"\t\x00\x7f", `\t\x00\x7f`},
		{"\u0085\u009b2J", `\u0085\u009b2J`}, // NEL, 8-bit CSI
		{"abc\u202egpj.exe", `abc\u202egpj.exe`},
		{"\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069", `\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069`},
		{"\u2029\u202f\u2065", "\u2029\u202f\u2065"}, // neighbours stay
		{"bad\xff\xc3(", `bad\xff\xc3(`},
		{"\xe2\x80", `\xe2\x80`}, // a cut rune
		{"\uFFFD", "\uFFFD"},     // a real replacement character is text
	} {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := string(Append([]byte("p:"), tc.in)); got != "p:"+tc.want {
			t.Errorf("Append(%q) = %q, want %q", tc.in, got, "p:"+tc.want)
		}
		if Clean(tc.in) != (tc.in == tc.want) {
			t.Errorf("Clean(%q) = %v", tc.in, Clean(tc.in))
		}
	}
}

func TestEscapeCleanDoesNotAllocate(t *testing.T) {
	s := strings.Repeat("/usr/bin/php8.2 rebuild-index.php ä日本 ", 4)
	if n := testing.AllocsPerRun(100, func() { _ = Escape(s) }); n != 0 {
		t.Errorf("Escape of clean text: %v allocations, want 0", n)
	}
}

// FuzzEscape: the output never holds a control character, a bidi control
// or invalid UTF-8, and clean printable text comes back unchanged.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "php", "\x1b]0;pwned\x07", "a\nBcc: x@y", "\u202e", "\xff\xfe", "\u0085", "日本語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Escape(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Escape(%q) = %q: not UTF-8", s, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
				t.Fatalf("Escape(%q) = %q holds %U", s, out, r)
			}
		}
		clean := utf8.ValidString(s)
		for _, r := range s {
			clean = clean && !unicode.IsControl(r) && !(r >= 0x202a && r <= 0x202e) && !(r >= 0x2066 && r <= 0x2069)
		}
		if clean != (out == s) {
			t.Fatalf("Escape(%q) = %q; input clean: %v", s, out, clean)
		}
		if Clean(s) != clean {
			t.Fatalf("Clean(%q) = %v, want %v", s, Clean(s), clean)
		}
		if Escape(out) != out {
			t.Fatalf("Escape is not idempotent on %q: %q", out, Escape(out))
		}
	})
}

func BenchmarkEscape(b *testing.B) {
	for _, bc := range []struct{ name, s string }{
		{"clean-ascii", "/usr/bin/php8.2 /home/alice/public_html/index.php --rebuild"},
		{"clean-utf8", "/home/アリス/bin/インデックス再構築 --rebuild"},
		{"hostile", "/tmp/x\x1b]0;pwned\x07\x1b[2J\nBcc: x@y\u202egpj"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.s)))
			b.ReportAllocs()
			for b.Loop() {
				_ = Escape(bc.s)
			}
		})
	}
}
