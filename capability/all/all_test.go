package all

import (
	"strings"
	"testing"

	"github.com/guardd/guardd/policy"
)

// Every variable a capability defines is documented, typed, and named for
// its level, so that the README's scopes (proc.* makes a process rule, fs.*
// a filesystem rule) hold for the whole language, not only the core.
func TestEveryVariableNamedForItsLevel(t *testing.T) {
	prefix := map[policy.Level]string{
		policy.ProcLevel: "proc.", policy.UserLevel: "user.", policy.HostLevel: "host.", policy.FSLevel: "fs.",
	}
	counts := map[string]int{}
	for _, v := range policy.Vars() {
		p, ok := prefix[v.Level()]
		if !ok || !strings.HasPrefix(v.Name, p) {
			t.Errorf("%s has level %d, whose variables are named %q", v.Name, v.Level(), p)
		}
		if v.Doc == "" || v.Type == "" {
			t.Errorf("%s: doc %q, type %q", v.Name, v.Doc, v.Type)
		}
		counts[p]++
	}
	// The registry brings in the capabilities' variables, not only the
	// core's: one of each capability that defines some.
	for _, name := range []string{"proc.lock_wait_seconds", "user.tx_bytes_per_sec", "fs.used_percent", "user.inodes"} {
		found := false
		for _, v := range policy.Vars() {
			found = found || v.Name == name
		}
		if !found {
			t.Errorf("%s is not in the language with the registry imported", name)
		}
	}
	if counts["fs."] == 0 || counts["host."] == 0 {
		t.Errorf("variables per level: %v", counts)
	}
}
