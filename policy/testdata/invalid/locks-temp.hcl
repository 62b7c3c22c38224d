class "customers" {
  uids = ["1000-59999"]
}

inodes {
  dirs   = ["tmp", "/", "/tmp/", "/tmp/**", "/proc/1", "/tmp/[", "/var/tmp"] # ERROR: Write an absolute path
  period = "1s" # ERROR: period must be at least 10s
  watch  = "yes" # ERROR: Expected true or false
}

inodes { # ERROR: Duplicate inodes block
  dirs = ["/tmp"]
}

rule "fs-with-class" {
  class = "customers" # ERROR: Filesystem rules take no class
  when  = fs.used_percent > 90
  report {}
}

rule "fs-kill" {
  when = fs.inodes_used_percent > 90
  kill {} # ERROR: Step cannot act on a filesystem
}

rule "mixed" {
  when = fs.used_percent > 90 && proc.cpu_percent > 50 # ERROR: mixes filesystems
  report {}
}

rule "no-class" { # ERROR: Missing required argument
  when = proc.lock_wait_seconds > 60
  kill {}
}

rule "broken-fs" {
  when = fs.used_precent > 90 # ERROR: Did you mean fs.used_percent?
  report {}
}

rule "clean" {
  class = "customers"
  when  = user.inodes > 1000
  clean_tmp {
    dirs       = ["/var/tmp"]
    older_than = "30s" # ERROR: older_than must be at least 1m0s
  }
}

rule "clean-nothing" {
  class = "customers"
  when  = user.inode_growth_per_min > 1000
  clean_tmp { # ERROR: Missing required argument
    older_than = "1d"
  }
}
