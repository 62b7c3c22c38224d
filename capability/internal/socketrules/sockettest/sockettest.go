// Package sockettest holds the test fixtures of the listeners and
// outbound capabilities: a Host over account files of its own, and a
// policy parser.
package sockettest

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// Host lends accounts, a logger and the --mode override; any other
// method panics (the embedded nil Host), which a test would notice.
type Host struct {
	capability.Host
	acc  *platform.Accounts
	log  *slog.Logger
	mode string
}

func (h *Host) Accounts() *platform.Accounts { return h.acc }
func (h *Host) Log() *slog.Logger            { return h.log }
func (h *Host) ModeOverride() string         { return h.mode }

// NewHost returns a Host whose accounts are root (0), shop1 (2000), bob
// (2001, in group shops) and far (70000, in group shops); mode is the
// --mode override ("" for none).
func NewHost(t *testing.T, mode string) *Host {
	t.Helper()
	dir := t.TempDir()
	passwd := "root:x:0:0::/root:/bin/sh\nshop1:x:2000:2000::/home/shop1:/bin/sh\nbob:x:2001:100::/home/bob:/bin/sh\nfar:x:70000:100::/home/far:/bin/sh\n"
	group := "root:x:0:\nusers:x:100:\nshops:x:3000:bob,far\n"
	acc := platform.NewAccounts()
	acc.PasswdPath, acc.GroupPath = filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	if err := os.WriteFile(acc.PasswdPath, []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(acc.GroupPath, []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := acc.Refresh(); err != nil {
		t.Fatal(err)
	}
	return &Host{acc: acc, log: slog.New(slog.NewTextHandler(io.Discard, nil)), mode: mode}
}

// Parse parses one policy file or fails the test.
func Parse(t *testing.T, src string) *policy.Policy {
	t.Helper()
	p, diags := policy.Parse(map[string][]byte{"test.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}
