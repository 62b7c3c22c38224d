# A rule's scope, declared or inferred from its condition.
class "customers" {
  uids = ["1000-59999"]
}

# Inferred user scope: kill_user and stop_user act once on the user.
rule "storm" {
  class = "customers"
  when  = user.procs > 300
  stop_user {}
  kill_user {
    after = "1m"
  }
}

# Declared user scope, the same as inferred.
rule "declared-user" {
  class = "customers"
  scope = "user"
  when  = user.cpu_percent > 400 && host.load1 > 10
  renice {
    nice = 19
  }
}

# Declared process scope with a user.* condition: each process of a user
# over the budget is reniced, one by one.
rule "each-process" {
  class = "customers"
  scope = "process"
  when  = user.procs > 200
  renice {
    nice = 10
  }
}

rule "nice-zero" {
  class = "customers"
  when  = proc.nice < 0
  renice {
    nice = 0
  }
}
