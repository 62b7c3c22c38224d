# One rule that walks through every step kind, with days in durations.
class "customers" {
  uids = ["1000-59999"]
}

rule "escalate" {
  class    = "customers"
  when     = proc.cpu_percent > 80 || proc.rss_mb > 2048
  for      = "1d12h"
  cooldown = "2d"
  report {}
  renice {
    after = "5m"
    nice  = 10
  }
  renice {
    after = "5m"
    nice  = 19.0
  }
  stop {
    after = "1h"
  }
  kill {
    after  = "1d"
    signal = "kill"
  }
}

rule "hup-then-term" {
  class = "customers"
  when  = proc.threads >= 500
  kill {
    signal = "HUP"
    grace  = "1m"
  }
}
