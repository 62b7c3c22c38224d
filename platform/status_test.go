package platform

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStatusIDs(t *testing.T) {
	ok := func(ids IDs) *IDs { return &ids }
	tests := map[string]*IDs{ // nil: must fail
		"self-root":        ok(IDs{}),
		"user-1000":        ok(IDs{UID: 1000, EUID: 1000, GID: 1000, EGID: 1000}),
		"ruid-euid-differ": ok(IDs{UID: 65534, EUID: 0, GID: 65534, EGID: 0}),
		"zombie":           ok(IDs{}),
		// The process is named "\nUid:\t0\t0\t0\t0"; status escapes the
		// newline, so the name cannot pass for uid 0.
		"name-spoofs-uid": ok(IDs{UID: 1000, EUID: 1000, GID: 1000, EGID: 1000}),

		"hand-gid-first-no-newline": ok(IDs{UID: 10, EUID: 11, GID: 20, EGID: 21}),
		"hand-crlf":                 ok(IDs{UID: 1, EUID: 2, GID: 5, EGID: 6}),
		"hand-uid-max":              ok(IDs{UID: 1<<32 - 1, EUID: 1<<32 - 2, GID: 1<<32 - 1, EGID: 0}),
		"hand-indented-uid":         ok(IDs{UID: 7, EUID: 7, GID: 7, EGID: 7}), // " Uid:" is not the Uid: line
		"hand-uid-overflow":         nil,
		"hand-uid-garbage":          nil,
		"hand-uid-short":            nil,
		"hand-uid-negative":         nil,
		"hand-no-gid":               nil,
		"hand-empty":                nil,
		"hand-truncated":            nil,
	}
	for _, name := range fixtures(t, "status") {
		if _, ok := tests[name]; !ok {
			t.Errorf("testdata/status/%s has no expectation in TestParseStatusIDs", name)
		}
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseStatusIDs(readFixture(t, filepath.Join("status", name)))
			if want == nil {
				if err == nil {
					t.Fatalf("ParseStatusIDs = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStatusIDs: %v", err)
			}
			if got != *want {
				t.Errorf("ParseStatusIDs = %+v, want %+v", got, *want)
			}
		})
	}
}

func TestParseCmdline(t *testing.T) {
	long := strings.Join(strings.Split(strings.Repeat(strings.Repeat("x", 100)+"\x00", 30), "\x00")[:30], " ")
	utf8 := strings.TrimRight(strings.ReplaceAll(strings.Repeat("héllo wörld ✓\x00", 40), "\x00", " "), " ")
	tests := []struct {
		file string
		max  int
		want string
	}{
		{"self-cat", MaxCmdline, "cat /proc/self/cmdline"},
		{"self-cat", 3, "cat"},
		{"self-cat", 0, ""},
		{"argv0-spaces", MaxCmdline, "argv0 with spaces 60"},
		// Tabs and newlines inside arguments become spaces; the empty
		// argument keeps its place (two spaces).
		{"control-chars", MaxCmdline, "sh -c sleep 60; : argv0 tab here nl here  last"},
		{"hand-empty", MaxCmdline, ""}, // kernel threads and zombies
		{"hand-only-nuls", MaxCmdline, ""},
		{"hand-setproctitle", MaxCmdline, "nginx: worker process"},
		{"hand-spaces-padding", MaxCmdline, "php-fpm: pool www" + strings.Repeat(" ", 30)},
		{"hand-long", MaxCmdline, long[:MaxCmdline]},
		{"hand-control", MaxCmdline, "a b c d e\x80f\xff"},
		{"hand-utf8", MaxCmdline, utf8[:MaxCmdline]},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		got := ParseCmdline(readFixture(t, filepath.Join("cmdline", tt.file)), tt.max)
		if got != tt.want {
			t.Errorf("ParseCmdline(%s, %d) = %q, want %q", tt.file, tt.max, got, tt.want)
		}
	}
	for _, name := range fixtures(t, "cmdline") {
		if !seen[name] {
			t.Errorf("testdata/cmdline/%s has no expectation in TestParseCmdline", name)
		}
	}
	if len(long) <= MaxCmdline {
		t.Fatal("hand-long fixture is too short to test truncation")
	}
}

func TestParseExeLink(t *testing.T) {
	tests := []struct {
		link    string
		path    string
		deleted bool
	}{
		{"/usr/bin/sleep", "/usr/bin/sleep", false},
		{"/tmp/.x/kit (deleted)", "/tmp/.x/kit", true},
		// Replaced twice: only the suffix the kernel added is removed.
		{"/tmp/a (deleted) (deleted)", "/tmp/a (deleted)", true},
		{"/home/u/my (deleted) tool", "/home/u/my (deleted) tool", false},
		{" (deleted)", " (deleted)", false}, // nothing before the suffix: not a path
		{"", "", false},
		{"/memfd:x (deleted)", "/memfd:x", true}, // fileless malware runs from a memfd
	}
	for _, tt := range tests {
		path, deleted := ParseExeLink(tt.link)
		if path != tt.path || deleted != tt.deleted {
			t.Errorf("ParseExeLink(%q) = %q, %v; want %q, %v", tt.link, path, deleted, tt.path, tt.deleted)
		}
	}
}
