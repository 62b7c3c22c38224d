class "customers" {
  uids = ["1000-59999"]
}

limits "customers" {
  class = "customer" # ERROR: Did you mean "customers"?
  procs = 400
}

limits "customers" { # ERROR: Duplicate limits block
  class = "customers"
  procs = 10
}

limits "zero" {
  class = "customers"
  procs = 0 # ERROR: Bad process cap
}

limits "fraction" {
  class = "customers"
  procs = 2.5 # ERROR: Bad process cap
}

limits "no-procs" { # ERROR: Empty limits block
  class = "customers"
}

rule "kill-then-more" {
  class = "customers"
  when  = user.procs > 300
  kill_user {}
  report {} # ERROR: kill_user ends the process
}

rule "bad-reap" {
  class = "customers"
  when  = proc.zombie_children > 5
  reap {
    grace = "soon" # ERROR: Bad duration
  }
}

rule "typo" {
  class = "customers"
  when  = user.fork_per_sec > 5 # ERROR: Did you mean user.forks_per_sec?
  kill_user {}
}

rule "stop-then-resume" {
  class = "customers"
  when  = user.forks_per_sec > 500
  stop_user {}
  resume_user { # ERROR: write stop_user { resume_after = "5m" }
    after = "5m"
  }
}

rule "resume-too-late" {
  class = "customers"
  when  = user.forks_per_sec > 500
  stop_user {
    resume_after = "48h" # ERROR: resume_after must be between 1s and 24h0m0s
  }
}

rule "resume-word" {
  class = "customers"
  when  = user.forks_per_sec > 500
  stop_user {
    resume_after = "later" # ERROR: Bad duration
  }
}
