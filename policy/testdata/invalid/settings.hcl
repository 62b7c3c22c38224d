guardd {
  mode      = "enforcing" # ERROR: Unknown mode
  audit_log = "var/log/guardd/audit.jsonl" # ERROR: Path must be absolute
  state_dir = "./state" # ERROR: Path must be absolute
  min_uid   = 0 # ERROR: Bad min_uid
  intervl   = "1s" # ERROR: Did you mean "interval"?
}

guardd { # ERROR: Duplicate guardd block
  mode = "monitor"
}

class "customers" {
  uids = ["1000-59999"]
}

protect {
  exes = [
    "sshd", # ERROR: Executable must be an absolute path
    "usr/sbin/httpd", # ERROR: Protection is by executable path
    "/usr/sbin/sshd",
    "/opt/***/x", # ERROR: Bad pattern
  ]
}

rule "r" {
  class = "customers"
  mode  = "dry-run" # ERROR: Unknown mode
  when  = proc.cpu_percent > 80
  kill {}
}
