package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guardd/guardd/policy/policytest"
)

// TestLoadInvalid loads each policy under testdata/invalid (a file, or a
// directory loaded whole) and checks that the diagnostics are exactly the
// marked ones: every `# ERROR: text` line has an error whose summary or
// detail contains text, and no unmarked line has one. So every mistake is
// reported at once, at the right place. (The capabilities' own files of
// mistakes are checked the same way, in their packages.)
func TestLoadInvalid(t *testing.T) {
	ents, err := os.ReadDir("testdata/invalid")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() && !strings.HasSuffix(e.Name(), ".hcl") {
			continue
		}
		n++
		path := filepath.Join("testdata/invalid", e.Name())
		t.Run(e.Name(), func(t *testing.T) { policytest.CheckInvalid(t, path) })
	}
	if n == 0 {
		t.Fatal("no policies in testdata/invalid")
	}
}
