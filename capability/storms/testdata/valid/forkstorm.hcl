class "customers" {
  uids = ["1000-59999"]
}

class "resellers" {
  users = ["shop1"]
}

limits "customers" {
  class = "customers"
  procs = 400
}

limits "resellers" {
  class = "resellers"
  procs = 800
}

rule "fork-storm" {
  class    = "customers"
  when     = user.forks_per_sec > 500 || user.procs > 350
  cooldown = "10s"
  kill_user {}
}

rule "freeze-then-thaw" {
  class = "resellers"
  when  = user.procs > 700
  stop_user {
    resume_after = "5m"
  }
}

rule "thaw" {
  class = "resellers"
  when  = user.procs < 10
  resume_user {}
}

rule "zombies" {
  class = "customers"
  when  = proc.zombie_children > 20 || proc.children > 500
  for   = "1m"
  reap {
    grace = "30s"
  }
}

rule "user-zombies" {
  class = "customers"
  when  = user.zombies > 100
  reap {}
}
