package policy

import "testing"

// Escalations in flight are stored under their rule's key (state_dir), so
// the key of an unchanged rule must not change when guardd is upgraded: a
// schema that moves to its capability keeps the keys it gave.
func TestRuleKeysStable(t *testing.T) {
	p := mustParse(t, `
class "c" {
  uids = ["1000-59999"]
}
inodes {
  dirs = ["/tmp"]
}
rule "hog" {
  class = "c"
  when  = proc.cpu_percent > 80
  renice {
    nice = 19
  }
  kill {
    after = "30m"
  }
}
rule "tmp" {
  class = "c"
  when  = user.inodes > 10
  clean_tmp {
    dirs       = ["/var/tmp", "/dev/shm"]
    older_than = "2d"
  }
  kill_user {
    after = "1h"
  }
}
report {
  mail {
    to = "{{.User}}@example.jp"
  }
}
rule "told" {
  class = "c"
  when  = user.procs > 100
  notify {
    template = "many"
    interval = "2h"
  }
  kill_user {
    after = "1h"
  }
  notify {}
}
`)
	for name, want := range map[string]string{"hog": "hog@21c417ea324e", "tmp": "tmp@daf5a5472109", "told": "told@503e129720c1"} {
		if got := p.Rule(name).Key; got != want {
			t.Errorf("rule %s: key %q, want %q", name, got, want)
		}
	}
}
