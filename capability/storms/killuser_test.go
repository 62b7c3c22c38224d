package storms

import (
	"fmt"
	"testing"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// protectIndexPolicy protects two service binaries, as a hosting policy does.
func protectIndexPolicy(t testing.TB) *policy.Policy {
	p, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(`
class "c" { uids = ["1000-59999"] }
protect { exes = ["/usr/sbin/sshd", "/usr/lib/openssh/sftp-server", "/usr/lib/dovecot/imap"] }
rule "storm" {
  class = "c"
  when  = user.procs > 300
  kill_user {}
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

func indexSnapshot(n int) *platform.Snapshot {
	snap := &platform.Snapshot{}
	for i := range n {
		p := &platform.Process{ProcID: platform.ProcID{PID: int32(1000 + i)}, UID: uint32(1000 + i%100), EUID: uint32(1000 + i%100), Exe: fmt.Sprintf("/usr/bin/php-cgi%d", i%7)}
		if i%500 == 0 {
			p.Exe = "/usr/sbin/sshd"
		}
		snap.Procs = append(snap.Procs, p)
	}
	return snap
}

// The index names the users with a process that runs a protected
// executable or a setuid program, and no other.
func TestProtectIndex(t *testing.T) {
	pol := protectIndexPolicy(t)
	c := &protectSeen{}
	c.Start(nil, pol)
	snap := indexSnapshot(1000)
	snap.Procs[1].EUID = 0 // uid 1001 runs a setuid program
	c.Observe(snap)
	for uid, want := range map[uint32]bool{1000: true, 1001: true, 1002: false, 1099: false} {
		if got := c.has(uid); got != want {
			t.Errorf("uid %d: indexed %v, want %v", uid, got, want)
		}
	}
	// The next sample replaces the last one.
	c.Observe(&platform.Snapshot{})
	if c.has(1000) {
		t.Error("uid 1000 still indexed after a sample without its processes")
	}
}

// BenchmarkProtectIndex is the index's cost per tick at 5,000 processes.
func BenchmarkProtectIndex(b *testing.B) {
	pol := protectIndexPolicy(b)
	c := &protectSeen{}
	c.Start(nil, pol)
	snap := indexSnapshot(5000)
	for b.Loop() {
		c.Observe(snap)
	}
}
