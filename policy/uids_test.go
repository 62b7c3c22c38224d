package policy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/guardd/guardd/platform"
)

func TestListenVariables(t *testing.T) {
	proc := fakeProc()
	proc.ListenPorts = []uint16{22, 8080}
	user := &platform.UserStats{UID: proc.UID, Listeners: 3}
	env := &Env{Proc: proc, User: user, Host: &platform.Host{}}
	for src, want := range map[string]bool{
		`contains(proc.listen_ports, 8080)`:                           true,
		`contains(proc.listen_ports, 8081)`:                           false,
		`length(proc.listen_ports) == 2`:                              true,
		`user.listeners == 3 && proc.pid > 0`:                         true,
		`contains(proc.nice > 100 ? [1] : proc.listen_ports, 22)`:     true,
		`contains([80, 443, proc.pid], 4242)`:                         true,
		`length([]) == 0 && proc.pid > 0`:                             true,
		`contains(proc.listen_ports, proc.listen_ports[0])`:           false, // not reached: a compile error below
		`length(proc.listen_ports) > 0 && !contains([8080, 22], 443)`: true,
	} {
		c, _, diags := parseWhen(t, src)
		if strings.Contains(src, "[0]") {
			if !diags.HasErrors() {
				t.Errorf("%s compiled; indexing is not supported", src)
			}
			continue
		}
		if diags.HasErrors() {
			t.Errorf("%s:%s", src, diagString(diags))
			continue
		}
		if got := c.Eval(env); got != want {
			t.Errorf("%s = %v, want %v", src, got, want)
		}
	}
	c := mustWhen(t, `contains(proc.listen_ports, 8080)`)
	if got := fmt.Sprint(c.Values(env)["proc.listen_ports"]); got != "[22 8080]" {
		t.Errorf("evidence of proc.listen_ports = %s", got)
	}
	proc.ListenPorts = nil
	if c.Eval(env) {
		t.Error("a process without listeners listens on 8080")
	}
	if v := c.Values(env)["proc.listen_ports"]; v != nil && fmt.Sprint(v) != "[]" {
		t.Errorf("evidence without listeners = %v", v)
	}
	if n := testing.AllocsPerRun(100, func() { c.Eval(env) }); n != 0 {
		t.Errorf("a process without listeners costs %v allocations per evaluation", n)
	}
}

func TestUIDSetMinus(t *testing.T) {
	s := uidSet{{0, 10}, {20, 30}, {4294967290, 4294967295}}
	for _, tc := range []struct {
		t    uidSet
		want string
	}{
		{nil, "[0-10 20-30 4294967290-4294967295]"},
		{uidSet{{0, 4294967295}}, "[]"},
		{uidSet{{5, 25}}, "[0-4 26-30 4294967290-4294967295]"},
		{uidSet{{0, 0}, {10, 10}, {4294967295, 4294967295}}, "[1-9 20-30 4294967290-4294967294]"},
		{uidSet{{11, 19}}, "[0-10 20-30 4294967290-4294967295]"},
	} {
		if got := fmt.Sprint([]UIDRange(s.minus(tc.t))); got != tc.want {
			t.Errorf("%v minus %v = %s, want %s", s, tc.t, got, tc.want)
		}
	}
	if got := fmt.Sprint([]UIDRange(uidSet{{5, 9}, {0, 3}, {4, 4}, {20, 30}, {25, 26}}.normalize())); got != "[0-9 20-30]" {
		t.Errorf("normalize = %s", got)
	}
}
