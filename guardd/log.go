package main

import (
	"encoding"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"

	"github.com/guardd/guardd/internal/printable"
)

// buildLogger returns a logger writing in format: "text" (colours when w
// is a terminal), or "json". The text handlers escape what they print
// (escapeAttr); JSON is JSON-escaped by its handler and left as it is.
func buildLogger(format string, level slog.Level, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text", "":
		if isTerminal(w) {
			return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly, ReplaceAttr: escapeAttr})), nil
		}
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: escapeAttr})), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

// quoted is a value the text handlers print with strconv.Quote, which
// writes every control, bidi and invalid byte visibly: both slog's and
// tint's handlers quote a []byte-kinded value that way.
type quoted []byte

// escapeAttr makes log values safe for a terminal. Log lines carry
// customer text (comm, exe, paths in errors). tint, on a colour
// terminal, writes the message and values that need no quoting as they
// are, and in quoted ones turns every `\x1b` back into a raw ESC (so that
// coloured values keep their colour) — which a literal backslash-x1b in a
// customer's comm becomes too. slog's text handler leaves DEL alone. So:
// the message is escaped; a value that is not clean, or holds a
// backslash, goes out as quoted bytes.
func escapeAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.MessageKey && a.Value.Kind() == slog.KindString {
		a.Value = slog.StringValue(printable.Escape(a.Value.String()))
		return a
	}
	var s string
	switch a.Value.Kind() {
	case slog.KindString:
		s = a.Value.String()
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case []byte, quoted:
			return a // printed quoted already
		case encoding.TextMarshaler:
			b, err := v.MarshalText()
			if err != nil {
				return a
			}
			s = string(b)
		case error:
			s = v.Error()
		default:
			s = fmt.Sprintf("%+v", v)
		}
	default:
		return a // numbers, times, durations, levels
	}
	if printable.Clean(s) && !strings.Contains(s, `\`) {
		return a
	}
	a.Value = slog.AnyValue(quoted(s))
	return a
}

// isTerminal reports whether w is a character device, which for stderr
// means a terminal (under systemd it is a journal socket).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && f.Name() != os.DevNull
}
