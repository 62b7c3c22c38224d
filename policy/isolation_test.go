package policy

import (
	"strings"
	"testing"

	"github.com/guardd/guardd/platform"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  string
	}{
		{in: "2GiB", want: 2 << 30},
		{in: "2G", want: 2 << 30},
		{in: "512MiB", want: 512 << 20},
		{in: "1.5GiB", want: 3 << 29},
		{in: "50M", want: 50 << 20},
		{in: "4096", want: 4096},
		{in: "4096B", want: 4096},
		{in: " 1 TiB ", want: 1 << 40},
		{in: "2GB", err: "write GiB"},
		{in: "2 gigs", err: "unknown unit"},
		{in: "GiB", err: "does not start with a number"},
		{in: "", err: "does not start with a number"},
		{in: "1.2.3G", err: "invalid syntax"},
		{in: "99999999TiB", err: "too large"},
	} {
		got, err := ParseSize(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSize(%q) = %d, %v; want an error saying %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

const isolationPolicy = `
class "customers" {
  uids = ["1000-59999"]
}
class "resellers" {
  users = ["carol"]
}
protect {
  users = ["dave"]
}
limits "customers" {
  class        = "customers"
  procs        = 400
  cpu          = 100
  memory       = "2GiB"
  io_read_bps  = "50MiB"
  io_write_bps = "20MiB"
  burst {
    when   = host.load1 < host.ncpu
    cpu    = 200
    memory = "3GiB"
  }
}
limits "resellers" {
  class  = "resellers"
  cpu    = 400
  memory = "1GiB"
}
limits "caps-only" {
  class = "customers"
  procs = 500
}
`

func TestLimitsFor(t *testing.T) {
	p, diags := Parse(map[string][]byte{"iso.hcl": []byte(isolationPolicy)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !p.Isolating() {
		t.Fatal("a policy with cpu/memory limits does not ask for isolation")
	}
	busy := &Env{Host: &platform.Host{Load1: 8, NCPU: 4}}
	calm := &Env{Host: &platform.Host{Load1: 1, NCPU: 4}}

	got := p.LimitsFor(1500, "bob", nil, busy)
	want := UserLimits{Procs: 400, CPUPercent: 100, MemoryBytes: 2 << 30, IOReadBPS: 50 << 20, IOWriteBPS: 20 << 20,
		Blocks: []string{"customers", "caps-only"}}
	if !equalLimits(got, want) {
		t.Errorf("busy host: %+v, want %+v", got, want)
	}
	got = p.LimitsFor(1500, "bob", nil, calm)
	want.CPUPercent, want.MemoryBytes, want.Bursting = 200, 3<<30, []string{"customers"}
	if !equalLimits(got, want) {
		t.Errorf("calm host (burst): %+v, want %+v", got, want)
	}
	// carol is in both classes: the smallest of each kind, the burst of
	// customers raising only that block's values.
	got = p.LimitsFor(1501, "carol", nil, calm)
	want = UserLimits{Procs: 400, CPUPercent: 200, MemoryBytes: 1 << 30, IOReadBPS: 50 << 20, IOWriteBPS: 20 << 20,
		Blocks: []string{"customers", "resellers", "caps-only"}, Bursting: []string{"customers"}}
	if !equalLimits(got, want) {
		t.Errorf("carol: %+v, want %+v", got, want)
	}
	// Controls: protected and out-of-class accounts get no limit.
	if l := p.LimitsFor(1502, "dave", nil, calm); l.Any() {
		t.Errorf("protected dave got limits %+v", l)
	}
	if l := p.LimitsFor(999, "daemon", nil, calm); l.Any() {
		t.Errorf("uid 999 (no class) got limits %+v", l)
	}
	// The RLIMIT_NPROC cap still comes from procs alone.
	if c, ok := p.ProcCap(1500, "bob", nil); !ok || c != 400 {
		t.Errorf("ProcCap = %d, %v; want 400", c, ok)
	}
	if c, ok := p.ProcCap(1501, "carol", []string{}); !ok || c != 400 {
		t.Errorf("carol's ProcCap = %d, %v; want 400 (resellers sets no procs)", c, ok)
	}
}

// A policy with procs caps only needs no groups.
func TestProcsAloneIsNotIsolation(t *testing.T) {
	p, diags := Parse(map[string][]byte{"caps.hcl": []byte(`
class "customers" {
  uids = ["1000-59999"]
}
limits "customers" {
  class = "customers"
  procs = 400
}`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if p.Isolating() {
		t.Error("procs alone asks for per-customer groups")
	}
}

func equalLimits(a, b UserLimits) bool {
	return a.Procs == b.Procs && a.CPUPercent == b.CPUPercent && a.MemoryBytes == b.MemoryBytes &&
		a.IOReadBPS == b.IOReadBPS && a.IOWriteBPS == b.IOWriteBPS &&
		strings.Join(a.Blocks, ",") == strings.Join(b.Blocks, ",") && strings.Join(a.Bursting, ",") == strings.Join(b.Bursting, ",")
}
