# A shared host with resellers, ordinary customers and a staff group, and
# per-rule mode overrides.
guardd {
  interval    = "2s"
  mode        = "monitor"
  audit_log   = "/var/log/guardd/../guardd/audit.jsonl"
  state_dir   = "/var/lib/guardd"
  min_uid     = 500
  fd_interval = "30s"
}

class "resellers" {
  uids   = ["2000-2999", 3500]
  groups = ["reseller"]
}

class "customers" {
  uids  = ["5000-59999", "60010"]
  users = ["legacy-www", "bob"]
}

class "staff" {
  groups = ["wheel", "staff"]
}

protect {
  users  = ["nagios", "backup"]
  groups = ["admins"]
  exes   = ["/usr/sbin/sshd", "/usr/lib/dovecot/**", "/opt/*/bin/agent"]
}

# protect blocks may repeat; they merge.
protect {
  uids = ["65534"]
  exes = ["/usr/local/sbin/exim?"]
}

rule "customer-cpu" {
  class    = "customers"
  mode     = "enforce"
  when     = proc.cpu_percent > 90 && proc.nice < 19
  for      = "10m"
  cooldown = "1d"
  renice {
    nice = 19
  }
}

rule "reseller-cpu" {
  class = "resellers"
  when  = proc.cpu_percent > 150
  for   = "15m"
  report {}
}

rule "staff-long" {
  class = "staff"
  when  = proc.age_seconds > 7 * 86400
  report {}
}

rule "customer-long" {
  class = "customers"
  mode  = "monitor"
  when  = proc.age_seconds > 86400 && proc.state != "Z"
  kill {
    signal = "SIGTERM"
    grace  = "30s"
  }
}
