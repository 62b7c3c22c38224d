package policy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// policyInputs lists the *.hcl files and the directories (loaded whole) of
// a testdata folder.
func policyInputs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".hcl") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no policies in %s", dir)
	}
	return out
}

func diagString(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		at := "(no subject)"
		if d.Subject != nil {
			at = fmt.Sprintf("%s:%d,%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		fmt.Fprintf(&b, "\n\t%s: %s: %s", at, d.Summary, d.Detail)
	}
	return b.String()
}

func TestLoadValid(t *testing.T) {
	for _, path := range policyInputs(t, "testdata/valid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			p, diags := Load(path)
			if len(diags) != 0 || p == nil {
				t.Fatalf("Load(%s): want no diagnostics, got %d:%s", path, len(diags), diagString(diags))
			}
			if p.Source != path {
				t.Errorf("Source = %q, want %q", p.Source, path)
			}
			if len(p.Rules) == 0 {
				t.Fatal("no rules")
			}
			for i, r := range p.Rules {
				if r.Index != i || p.Rule(r.Name) != r {
					t.Errorf("rule %q: Index %d at position %d", r.Name, r.Index, i)
				}
				if r.Scope == ScopeFilesystem {
					if r.Class != nil {
						t.Errorf("filesystem rule %q has a class", r.Name)
					}
				} else if r.Class == nil || p.Class(r.Class.Name) != r.Class {
					t.Errorf("rule %q: class not resolved", r.Name)
				}
				if r.When == nil || r.When.Source == "" || len(r.When.Vars) == 0 {
					t.Errorf("rule %q: condition not compiled: %+v", r.Name, r.When)
				}
				if len(r.Steps) == 0 {
					t.Errorf("rule %q: no steps", r.Name)
				}
				if r.Mode != ModeEnforce && r.Mode != ModeMonitor {
					t.Errorf("rule %q: mode %q", r.Name, r.Mode)
				}
				if r.DeclRange.Filename == "" || r.DeclRange.Start.Line == 0 {
					t.Errorf("rule %q: no DeclRange", r.Name)
				}
				if !strings.HasPrefix(r.At(), r.DeclRange.Filename+":") {
					t.Errorf("rule %q: At() = %q", r.Name, r.At())
				}
			}
		})
	}
}

// TestValidDetails checks that the realistic valid policies decode to what
// they say, not merely without errors.
func TestValidDetails(t *testing.T) {
	load := func(t *testing.T, name string) *Policy {
		t.Helper()
		p, diags := Load(filepath.Join("testdata/valid", name))
		if diags.HasErrors() {
			t.Fatalf("%s:%s", name, diagString(diags))
		}
		return p
	}
	t.Run("multiclass", func(t *testing.T) {
		p := load(t, "multiclass.hcl")
		if p.Interval != 2*time.Second || p.Mode != ModeMonitor || p.MinUID != 500 || p.FDInterval != 30*time.Second {
			t.Errorf("settings = %+v", p.Settings)
		}
		if p.AuditLog != "/var/log/guardd/audit.jsonl" {
			t.Errorf("audit_log not cleaned: %q", p.AuditLog)
		}
		if len(p.Classes) != 3 {
			t.Fatalf("classes = %d", len(p.Classes))
		}
		res := p.Class("resellers")
		if got := fmt.Sprint(res.UIDs); got != "[2000-2999 3500]" {
			t.Errorf("resellers uids = %s", got)
		}
		if !res.Groups["reseller"] || !p.Class("customers").Users["legacy-www"] || !p.Class("staff").Groups["wheel"] {
			t.Error("users/groups not decoded")
		}
		// Two protect blocks merge.
		if got := fmt.Sprint(p.Protect.UIDs); got != "[65534]" {
			t.Errorf("protect uids = %s", got)
		}
		var exes []string
		for _, g := range p.Protect.Exes {
			exes = append(exes, g.Pattern)
		}
		if got := strings.Join(exes, " "); got != "/usr/sbin/sshd /usr/lib/dovecot/** /opt/*/bin/agent /usr/local/sbin/exim?" {
			t.Errorf("protect exes = %s", got)
		}
		if !p.Protect.Users["nagios"] || !p.Protect.Groups["admins"] {
			t.Error("protect users/groups not decoded")
		}
		modes := map[string]string{}
		for _, r := range p.Rules {
			modes[r.Name] = r.Mode
		}
		want := map[string]string{"customer-cpu": ModeEnforce, "reseller-cpu": ModeMonitor, "staff-long": ModeMonitor, "customer-long": ModeMonitor}
		if fmt.Sprint(modes) != fmt.Sprint(want) {
			t.Errorf("modes = %v, want %v", modes, want)
		}
		cc := p.Rule("customer-cpu")
		if cc.For != 10*time.Minute || cc.Cooldown != 24*time.Hour {
			t.Errorf("customer-cpu for/cooldown = %s/%s", cc.For, cc.Cooldown)
		}
		if p.Rule("reseller-cpu").Cooldown != DefaultCooldown {
			t.Errorf("default cooldown not applied")
		}
		k := p.Rule("customer-long").Steps[0]
		if k.Kind != StepKill || k.Signal != "TERM" || k.Grace != 30*time.Second {
			t.Errorf("kill step = %+v", k)
		}
	})
	t.Run("all-steps", func(t *testing.T) {
		p := load(t, "all-steps.hcl")
		r := p.Rule("escalate")
		if r.For != 36*time.Hour || r.Cooldown != 48*time.Hour {
			t.Errorf("for/cooldown = %s/%s", r.For, r.Cooldown)
		}
		var got []string
		for _, s := range r.Steps {
			got = append(got, fmt.Sprintf("%s@%s/n%d/%s/%s", s.Kind, s.After, s.Nice, s.Signal, s.Grace))
		}
		want := "report@0s/n0//0s renice@5m0s/n10//0s renice@5m0s/n19//0s stop@1h0m0s/n0//0s kill@24h0m0s/n0/KILL/0s"
		if strings.Join(got, " ") != want {
			t.Errorf("steps:\n got  %s\n want %s", strings.Join(got, " "), want)
		}
		k := p.Rule("hup-then-term").Steps[0]
		if k.Signal != "HUP" || k.Grace != time.Minute {
			t.Errorf("kill step = %+v", k)
		}
		// Every step kind is used at least once.
		kinds := map[StepKind]bool{}
		for _, r := range p.Rules {
			for _, s := range r.Steps {
				kinds[s.Kind] = true
			}
		}
		for _, k := range []StepKind{StepRenice, StepKill, StepStop, StepReport} {
			if !kinds[k] {
				t.Errorf("step kind %s not covered", k)
			}
		}
	})
	t.Run("user-scope", func(t *testing.T) {
		p := load(t, "user-scope.hcl")
		for _, r := range p.Rules {
			if r.Scope != ScopeUser || r.Scope.String() != "user" {
				t.Errorf("rule %q: scope %s, want user", r.Name, r.Scope)
			}
			for _, v := range r.When.Vars {
				if strings.HasPrefix(v.Name, "proc.") {
					t.Errorf("rule %q reads %s", r.Name, v.Name)
				}
			}
		}
	})
	t.Run("functions", func(t *testing.T) {
		p := load(t, "functions.hcl")
		if p.Rule("dropped-kit").Scope != ScopeProcess || p.Rule("ternary").Scope.String() != "process" {
			t.Error("process scope expected")
		}
		src := p.Rule("dropped-kit").When.Source
		for name := range functions {
			if !strings.Contains(src, name+"(") {
				t.Errorf("functions.hcl does not use %s()", name)
			}
		}
	})
	t.Run("split.d", func(t *testing.T) {
		p := load(t, "split.d")
		if len(p.Files) != 2 {
			t.Errorf("files = %d, want 2 (hidden and non-.hcl files skipped)", len(p.Files))
		}
		r := p.Rule("cpu-hog")
		if r.Mode != ModeMonitor || !strings.HasSuffix(r.DeclRange.Filename, "20-rules.hcl") {
			t.Errorf("rule mode %q from %s", r.Mode, r.DeclRange.Filename)
		}
	})
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "nope.hcl"), "Cannot read policy"},
		{"empty directory", dir, "Empty policy directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, diags := Load(tc.path)
			if p != nil || !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("Load(%s) = %v, %v; want error %q", tc.path, p, diags, tc.want)
			}
		})
	}
}

func TestIsPolicyFile(t *testing.T) {
	for name, want := range map[string]bool{
		"10-rules.hcl":      true,
		"a.hcl":             true,
		".a.hcl":            false, // editor temp files
		".#rules.hcl":       false,
		"rules.hcl~":        false,
		"rules.hcl.swp":     false,
		"rules.hcl.rpmsave": false,
		"README":            false,
	} {
		if got := IsPolicyFile(name); got != want {
			t.Errorf("IsPolicyFile(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestWriteDiagnostics checks what an admin sees from `guardd check`:
// file:line,col, the offending source line, and the hint.
func TestWriteDiagnostics(t *testing.T) {
	path := "testdata/invalid/steps.hcl"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, diags := Parse(map[string][]byte{path: src})
	if p != nil || !diags.HasErrors() {
		t.Fatal("expected errors")
	}
	// Parse returns no policy (so no Policy.Files) when there are errors:
	// the caller parses the sources again for the snippets.
	parser := hclparse.NewParser()
	if _, d := parser.ParseHCL(src, path); d.HasErrors() {
		t.Fatal(d)
	}
	files := parser.Files()
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, files, diags, false); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(string(src), "\n")
	// Every diagnostic appears with its position and its source line.
	for _, d := range diags {
		pos := fmt.Sprintf("%s:%d,%d", path, d.Subject.Start.Line, d.Subject.Start.Column)
		if !strings.Contains(out, pos) {
			t.Errorf("output lacks position %s", pos)
		}
		srcLine := strings.TrimSpace(lines[d.Subject.Start.Line-1])
		if !strings.Contains(out, srcLine) {
			t.Errorf("output lacks the snippet %q", srcLine)
		}
		if !strings.Contains(out, d.Summary) {
			t.Errorf("output lacks the summary %q", d.Summary)
		}
	}
	if !strings.Contains(out, "Error: Nice value out of range") {
		t.Errorf("unexpected format:\n%s", out)
	}
	// Color only when asked for.
	if strings.Contains(out, "\x1b[") {
		t.Error("escape codes without color")
	}
	buf.Reset()
	if err := WriteDiagnostics(&buf, files, diags, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "\x1b[") {
		t.Error("no escape codes with color")
	}
}
