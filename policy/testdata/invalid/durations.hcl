guardd {
  interval    = "10ms" # ERROR: interval must be between 100ms and 1h0m0s
  fd_interval = "500ms" # ERROR: fd_interval too short
}

class "customers" {
  uids = ["1000-59999"]
}

rule "a" {
  class    = "customers"
  when     = proc.cpu_percent > 80
  for      = "5 minutes" # ERROR: Bad duration
  cooldown = "1.5d" # ERROR: days must be a whole number
  kill {
    grace = 10 # ERROR: Put the value in double quotes
  }
}

rule "b" {
  class = "customers"
  when  = proc.cpu_percent > 80
  for   = "-5m" # ERROR: negative duration
  report {}
  kill {
    after = "" # ERROR: empty duration
  }
}
