# Stale locks, temp files and full disks (the policy reference's examples).
class "customers" {
  uids = ["1000-59999"]
}

inodes {
  dirs   = ["/tmp", "/var/tmp", "/home/*/tmp"]
  period = "5m"
  watch  = true
}

rule "lock-waiter" {
  class = "customers"
  when  = proc.lock_wait_seconds > 600
  kill {}
}

rule "lock-holder" {
  class = "customers"
  when  = proc.lock_blocking > 0 && proc.lock_blocking_seconds > 1800 && proc.cpu_percent < 1
  report {}
  kill {
    after = "10m"
  }
}

rule "lock-pileup" {
  class = "customers"
  when  = user.lock_waiters > 20
  report {}
}

rule "tmp-spewer" {
  class = "customers"
  when  = user.inodes > 200000 || user.inode_growth_per_min > 5000
  report {}
  clean_tmp {
    dirs       = ["/tmp", "/var/tmp", "/home/*/tmp"]
    older_than = "24h"
  }
}

rule "disk-full" {
  mode = "monitor"
  when = fs.used_percent > 90 || fs.inodes_used_percent > 90 || (fs.mount == "/tmp" && fs.avail_gb < 1)
  for  = "5m"
  report {}
}
