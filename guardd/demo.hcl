# The embedded default policy with times shortened for `guardd demo`, and
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
  users = ["{{.User}}"]
}

protect {
  exes = [
    "/usr/sbin/sshd",
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
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

rule "long-runner" {
  class = "customers"
  when  = proc.age_seconds > 15 && proc.state != "Z"
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
