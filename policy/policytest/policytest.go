// Package policytest checks a capability's policy testdata the way
// policy's own tests check the language's (policy/load_test.go): a file of
// mistakes, each line marked `# ERROR: text`, must fail with exactly the
// marked errors.
package policytest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/guardd/guardd/policy"
	"github.com/hashicorp/hcl/v2"
)

var markerRE = regexp.MustCompile(`#\s*ERROR:\s*(.+?)\s*$`)

type marker struct {
	file string
	line int
	want string
}

// CheckInvalid loads path (a file, or a directory loaded whole) and checks
// that its diagnostics are exactly the marked ones: every `# ERROR: text`
// line has an error whose summary or detail contains text, no unmarked
// line has one, and each error has a summary and a fix hint.
func CheckInvalid(t *testing.T, path string) {
	t.Helper()
	files := []string{path}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		files, _ = filepath.Glob(filepath.Join(path, "*.hcl"))
	}
	var markers []marker
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for line := 1; sc.Scan(); line++ {
			if m := markerRE.FindStringSubmatch(sc.Text()); m != nil {
				markers = append(markers, marker{f, line, m[1]})
			}
		}
	}
	if len(markers) == 0 {
		t.Fatalf("%s has no # ERROR: markers", path)
	}
	p, diags := policy.Load(path)
	if p != nil {
		t.Errorf("Load returned a policy despite errors")
	}
	if !diags.HasErrors() {
		t.Fatalf("no errors")
	}
	type at struct {
		file string
		line int
	}
	marked := map[at]bool{}
	for _, m := range markers {
		marked[at{m.file, m.line}] = true
		found := false
		for _, d := range diags {
			if d.Subject != nil && d.Subject.Filename == m.file && d.Subject.Start.Line == m.line &&
				strings.Contains(d.Summary+": "+d.Detail, m.want) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s:%d: no error containing %q; got:%s", m.file, m.line, m.want, diagString(diags))
		}
	}
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if d.Subject == nil {
			t.Errorf("error without a position: %s: %s", d.Summary, d.Detail)
			continue
		}
		if !marked[at{d.Subject.Filename, d.Subject.Start.Line}] {
			t.Errorf("unexpected error at %s:%d: %s: %s", d.Subject.Filename, d.Subject.Start.Line, d.Summary, d.Detail)
		}
		if d.Summary == "" || d.Detail == "" {
			t.Errorf("%s:%d: error without a summary or a fix hint: %q / %q", d.Subject.Filename, d.Subject.Start.Line, d.Summary, d.Detail)
		}
	}
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
