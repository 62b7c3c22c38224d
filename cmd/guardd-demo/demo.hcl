# The embedded default policy with times shortened for guardd-demo, and
# its class narrowed to the demo's throwaway user. A test keeps its rules in
# step with default.hcl.
guardd {
  interval    = "500ms"
  mode        = "enforce"
  audit_log   = "{{.Dir}}/audit.jsonl"
  state_dir   = "{{.Dir}}/state"
  min_uid     = 1000
  fd_interval = "2s"
}

class "customers" {
  users = ["{{.User}}", "{{.StormUser}}"]
}

protect {
  exes = [
    "/usr/sbin/sshd",
    "/usr/lib/openssh/sshd-session",
    "/usr/libexec/openssh/sshd-session",
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/sbin/dovecot",
    "/usr/local/sbin/dovecot",
    "/usr/lib/dovecot/**",
    "/usr/libexec/dovecot/**",
    "/usr/local/libexec/dovecot/**",
  ]
}

rule "cpu-hog" {
  class    = "customers"
  when     = proc.cpu_percent > 80
  for      = "2s"
  cooldown = "1h"
  renice {
    nice = 19
  }
  kill {
    after  = "4s"
    signal = "TERM"
    grace  = "2s"
  }
}

# Longer than the demo's burners live: renicing every process of a user
# mid-storm would only slow the demo down.
rule "user-cpu-hog" {
  class    = "customers"
  when     = user.cpu_percent > 80
  for      = "30s"
  cooldown = "1h"
  renice {
    nice = 19
  }
}

rule "long-runner" {
  class = "customers"
  when  = proc.age_seconds > 25 && proc.state != "Z" && !proc.in_session && !(proc.parent_uid == 0 && glob(proc.parent_exe, ["/usr/sbin/php-fpm*"]))
  kill {}
}

rule "fd-leak" {
  class = "customers"
  when  = proc.fds > 4000 || (host.files_open_percent > 80 && proc.fds > 1000)
  for   = "5s"
  report {}
  kill {
    after = "20s"
  }
}

rule "temp-exe" {
  class = "customers"
  mode  = "monitor"
  when  = glob(proc.exe, ["/tmp/**", "/var/tmp/**", "/dev/shm/**"]) || proc.exe_deleted
  kill {}
}

limits "customers" {
  class = "customers"
  procs = 400
}

rule "fork-storm" {
  class    = "customers"
  when     = user.forks_per_sec > 1000 || user.procs > 350
  cooldown = "10s"
  kill_user {}
}

rule "zombies" {
  class = "customers"
  when  = proc.zombie_children > 20
  for   = "2s"
  reap {
    grace = "2s"
  }
}

inodes {
  dirs   = ["{{.Dir}}/tmp"]
  period = "10s"
}

rule "lock-squatter" {
  class = "customers"
  when  = proc.lock_foreign_seconds > 2 || proc.lock_blocking_others_seconds > 3
  kill {}
}

rule "lock-waiter" {
  class = "customers"
  when  = proc.lock_wait_seconds > 4
  kill {}
}

rule "lock-holder" {
  class = "customers"
  when  = proc.lock_blocking > 0 && proc.lock_blocking_seconds > 2 && proc.cpu_percent < 1
  report {}
}

rule "tmp-spewer" {
  class = "customers"
  when  = user.inodes > 2000 || user.inode_growth_per_min > 10000
  report {}
  clean_tmp {
    dirs       = ["{{.Dir}}/tmp"]
    older_than = "24h"
  }
}

rule "disk-full" {
  when = fs.used_percent > 90 || fs.inodes_used_percent > 90
  for  = "5s"
  report {}
}

# Customers do not run their own servers (an Apache on 8080, an SMTP daemon,
# an IRC bot): a bind() outside the allow list fails with EPERM (a cgroup BPF
# hook in the kernel), and a listener opened anyway (before guardd started,
# or where the kernel cannot refuse) is killed within a tick. Monitor mode:
# the audit log says "would refuse" and "would kill". Allow what your
# customers need first (an FTP server's passive ports, where its sessions run
# as the customer: "*:49152-65534"), then set mode = "enforce".
listen "customers" {
  class = "customers"
  allow = []
  block = "bind"
  mode  = "monitor"
}
