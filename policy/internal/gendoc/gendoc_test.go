package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/guardd/guardd/policy"
)

const root = "../../.."

// TestDocsMatchCode fails when README.md's variable table or
// guardd.hcl(5)'s variable and step lists differ from the code's.
func TestDocsMatchCode(t *testing.T) {
	if err := run(root, false); err != nil {
		t.Fatalf("%v: run `go generate ./policy/internal/gendoc` and commit the result", err)
	}
}

// The check must be able to fail: a README with one variable removed from
// its table, or with a row edited by hand, is reported as out of date.
func TestDocsMismatchDetected(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := os.ReadFile(filepath.Join(root, "man", "guardd.hcl.5"))
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(readme), "| `proc.pid` | number | process id |\n", "", 1)
	if edited == string(readme) {
		t.Fatal("the README has no row for proc.pid")
	}
	newReadme, _, err := Generate([]byte(edited), man)
	if err != nil {
		t.Fatal(err)
	}
	if string(newReadme) == edited {
		t.Error("a missing variable row was not put back")
	}
	if _, _, err := Generate([]byte("no markers"), man); err == nil {
		t.Error("a README without the markers was accepted")
	}
}

// The README's step table is written by hand (it explains each step), so
// it is checked instead of generated: every step kind of the code has a
// row, every row is a step kind, and each row names every attribute.
func TestReadmeStepTable(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+) \\{\\}` \\| ([^|]*(?:\\\\\\|[^|]*)*) \\|")
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		rows[m[1]] = m[2]
	}
	want := map[string]bool{}
	for _, s := range policy.Steps() {
		want[string(s.Kind)] = true
		attrs, ok := rows[string(s.Kind)]
		if !ok {
			t.Errorf("README's step table has no row for %s {}", s.Kind)
			continue
		}
		for _, a := range s.Attrs {
			if !strings.Contains(attrs, "`"+a+"`") {
				t.Errorf("README's row for %s {} does not name its attribute %s", s.Kind, a)
			}
		}
	}
	for k := range rows {
		if !want[k] {
			t.Errorf("README's step table has a row for %s {}, which is no step kind of the code", k)
		}
	}
}

func TestRoffEscapes(t *testing.T) {
	for in, want := range map[string]string{
		"a `b` c":    `a \fBb\fR c`,
		"-1 … 19":    `\-1 \&... 19`,
		".starts":    `\&.starts`,
		`back\slash`: `back\eslash`,
		"x ≥ 1 — y":  `x \(>= 1 \(em y`,
	} {
		got, err := roff(in)
		if err != nil || got != want {
			t.Errorf("roff(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"unbalanced `code", "snowman ☃"} {
		if _, err := roff(bad); err == nil {
			t.Errorf("roff(%q) gave no error", bad)
		}
	}
}

// Every top-level block of the language has its entry in guardd.hcl(5)'s
// BLOCKS section and is introduced in the README (a heading or a bold
// lead-in naming it), so a capability that adds a block adds its docs.
func TestBlocksDocumented(t *testing.T) {
	man, err := os.ReadFile(filepath.Join(root, "man", "guardd.hcl.5"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := policy.Blocks()
	if len(blocks) < 5 {
		t.Fatalf("policy.Blocks() lists only %v", blocks)
	}
	for _, b := range blocks {
		typ := b[0]
		entry := ".B " + typ + " { }"
		if len(b) > 1 {
			entry = `.BI "` + typ + ` """ ` + b[1] + ` """ { }"`
		}
		if !strings.Contains(string(man), "\n"+entry+"\n") {
			t.Errorf("guardd.hcl(5) has no BLOCKS entry %q", entry)
		}
		intro := regexp.MustCompile("(?m)^(###.*|\\*\\*.*|.*The )`" + regexp.QuoteMeta(typ) + "[` ]")
		if !intro.Match(readme) {
			t.Errorf("the README introduces no %s block (a heading, bold lead-in or \"The `%s` block\")", typ, typ)
		}
	}
}

func TestWrap(t *testing.T) {
	got := wrap("aaa bbb ccc .ddd", 7)
	if want := "aaa bbb\nccc\n\\&.ddd"; got != want {
		t.Errorf("wrap = %q, want %q", got, want)
	}
	for _, l := range strings.Split(wrap(strings.Repeat("word ", 100), 78), "\n") {
		if len(l) > 78 {
			t.Errorf("line of %d bytes: %q", len(l), l)
		}
	}
}
