//go:build linux

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// hclBlock is one ```hcl block of the README.
type hclBlock struct {
	line int    // README line of the block's first line
	text string // without the fences
}

// readmeHCLBlocks returns every ```hcl block of README.md.
func readmeHCLBlocks(t *testing.T) []hclBlock {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []hclBlock
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```hcl" {
			continue
		}
		start := i + 1
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
		}
		if i == len(lines) {
			t.Fatalf("README.md:%d: ```hcl block never closed", start)
		}
		blocks = append(blocks, hclBlock{line: start + 1, text: strings.Join(lines[start:i], "\n") + "\n"})
	}
	return blocks
}

// What a fragment says on its first line.
const (
	fragmentMark  = "# fragment"                                             // top-level blocks, checked beside minimalPolicy
	whenLinesMark = "# fragment: each line is the when of a rule of its own" // `when = ...` lines
)

// minimalPolicy is what a fragment is checked beside: the class the
// README's examples name.
const minimalPolicy = "class \"customers\" {\n  uids = [\"1000-59999\"]\n}\n"

var (
	definesCustomers = regexp.MustCompile(`(?m)^class "customers"`)
	etcGuardd        = regexp.MustCompile(`"/etc/guardd/[^"]+"`)
)

// checkBlock runs the real `guardd check` on one README block as the
// README means it: a complete policy as is, a fragment inside a minimal
// policy. Files the example names under /etc/guardd (a webhook's secret)
// are made in a temporary directory and the paths pointed there, so the
// host's /etc is not touched.
func checkBlock(t *testing.T, b hclBlock) (out string, code int) {
	t.Helper()
	dir := t.TempDir()
	text := b.text
	first, _, _ := strings.Cut(text, "\n")
	switch {
	case first == whenLinesMark:
		var rules []string
		for i, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n")[1:] {
			class := "  class = \"customers\"\n"
			if strings.Contains(l, "fs.") { // filesystem rules name no class
				class = ""
			}
			rules = append(rules, fmt.Sprintf("rule \"readme-%d\" {\n%s  %s\n  report {}\n}\n", i, class, l))
		}
		text = strings.Join(rules, "\n")
		fallthrough
	case strings.HasPrefix(first, fragmentMark):
		if !definesCustomers.MatchString(text) {
			if err := os.WriteFile(filepath.Join(dir, "00-minimal.hcl"), []byte(minimalPolicy), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files := t.TempDir()
	text = etcGuardd.ReplaceAllStringFunc(text, func(q string) string {
		p := filepath.Join(files, strings.Trim(q, `"`))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("readme-test-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return `"` + p + `"`
	})
	if err := os.WriteFile(filepath.Join(dir, "50-readme.hcl"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := RunGuardd(t, "check", dir)
	return stdout + stderr, code
}

// TestReadmeHCLBlocks: every ```hcl block of the README passes the real
// `guardd check`, so an admin who copies one gets a policy that loads.
func TestReadmeHCLBlocks(t *testing.T) {
	blocks := readmeHCLBlocks(t)
	if len(blocks) < 10 {
		t.Fatalf("found only %d ```hcl blocks in README.md; the extraction is broken", len(blocks))
	}
	for _, b := range blocks {
		out, code := checkBlock(t, b)
		if code != 0 {
			t.Errorf("README.md:%d: the block does not pass guardd check (exit %d):\n%s\n%s", b.line, code, b.text, out)
		}
	}
}

// The controls: the same path rejects what is not valid, so the test
// above can fail. The single-line form the README once had is refused, and
// a fragment not marked as one is checked alone and fails on its class.
func TestReadmeHCLBlocksControl(t *testing.T) {
	bad := []hclBlock{
		{line: 1, text: "# fragment\nreport { summary { interval = \"1m\", top = 10 } }\n"},
		{line: 2, text: "rule \"cpu-hog\" {\n  class = \"customers\"\n  when  = proc.cpu_percent > 80\n  report {}\n}\n"},
		{line: 3, text: whenLinesMark + "\nwhen = proc.cpu_precent > 80\n"},
	}
	for _, b := range bad {
		if out, code := checkBlock(t, b); code == 0 {
			t.Errorf("control %d passed guardd check:\n%s\n%s", b.line, b.text, out)
		}
	}
	good := hclBlock{line: 4, text: "# fragment\nrule \"cpu-hog\" {\n  class = \"customers\"\n  when  = proc.cpu_percent > 80\n  report {}\n}\n"}
	if out, code := checkBlock(t, good); code != 0 {
		t.Errorf("the marked fragment failed:\n%s", out)
	}
}
