# Steps that act on the whole user are refused in process rules: one
# proc.* term would make kill_user run once per matching process.
class "customers" {
  uids = ["1000-59999"]
}

inodes {
  dirs = ["/tmp"]
}

rule "storm-with-proc" {
  class = "customers"
  when  = user.procs > 300 || proc.cpu_percent > 90
  kill_user {} # ERROR: kill_user acts on the whole user
}

rule "freeze-per-proc" {
  class = "customers"
  when  = proc.threads > 500
  stop_user {} # ERROR: or use stop to act on each matching process
  resume_user { # ERROR: User step in a process rule
    after = "5m"
  }
}

rule "clean-per-proc" {
  class = "customers"
  when  = proc.fds > 1000 && user.inodes > 100000
  clean_tmp { # ERROR: clean_tmp acts on the whole user
    dirs       = ["/tmp"]
    older_than = "1h"
  }
}

rule "declared-process" {
  class = "customers"
  scope = "process"
  when  = user.procs > 300
  kill_user {} # ERROR: it declares scope = "process"
}

rule "declared-user" {
  class = "customers"
  scope = "user"
  when  = user.procs > 300 && proc.age_seconds > 60 # ERROR: declares scope = "user", but its condition reads proc.age_seconds
  kill_user {}
}

rule "bad-scope" {
  class = "customers"
  scope = "users" # ERROR: Unknown scope
  when  = user.procs > 300
  kill_user {}
}

rule "fs-scope" {
  scope = "user" # ERROR: Filesystem rules take no scope
  when  = fs.used_percent > 90
  report {}
}

rule "nice-negative" {
  class = "customers"
  when  = proc.cpu_percent > 80
  renice {
    nice = -5 # ERROR: renice only lowers a customer's priority
  }
}
