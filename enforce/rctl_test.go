package enforce

import "testing"

func TestRctlMaxprocRules(t *testing.T) {
	if got := rctlMaxprocRule(1001, 300); got != "user:1001:maxproc:deny=300" {
		t.Errorf("rule %q", got)
	}
	if got := rctlMaxprocFilter(1001); got != "user:1001:maxproc:deny" {
		t.Errorf("filter %q", got)
	}
	tests := []struct {
		rules string
		n     int
		want  bool
	}{
		{"", 300, false},
		{"user:1001:maxproc:deny=300", 300, true},
		{"user:1001:maxproc:deny=200", 300, true},  // an admin's stricter rule stays
		{"user:1001:maxproc:deny=500", 300, false}, // looser: guardd's rule is added
		{"user:1001:maxproc:deny=100/user", 300, true},
		{"user:1001:maxproc:log=10,user:1001:maxproc:deny=250", 300, true},
		{"user:10011:maxproc:deny=5", 300, false}, // another uid whose number starts alike
		{"user:1001:maxproc:deny=lots", 300, false},
		{"user:1001:maxproc:deny=-1", 300, false},
		{" user:1001:maxproc:deny=300 ", 300, true},
	}
	for _, tc := range tests {
		if got := rctlCapAtMost(tc.rules, 1001, tc.n); got != tc.want {
			t.Errorf("rctlCapAtMost(%q, 1001, %d) = %v, want %v", tc.rules, tc.n, got, tc.want)
		}
	}
}
