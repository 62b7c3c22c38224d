class "customers" {
  uids = ["1000-59999"]
}

rule "nice-high" {
  class = "customers"
  when  = proc.cpu_percent > 80
  renice {
    nice = 25 # ERROR: Nice value out of range
  }
}

rule "nice-low" {
  class = "customers"
  when  = proc.cpu_percent > 80
  renice {
    nice = -21 # ERROR: Nice value out of range
  }
}

rule "nice-frac" {
  class = "customers"
  when  = proc.cpu_percent > 80
  renice {
    nice = 1.5 # ERROR: whole number from 0
  }
}

rule "nice-missing" {
  class = "customers"
  when  = proc.cpu_percent > 80
  renice {} # ERROR: The argument "nice" is required
}

rule "nice-word" {
  class = "customers"
  when  = proc.cpu_percent > 80
  renice {
    nice = "lowest" # ERROR: Expected a number
  }
}

rule "signal" {
  class = "customers"
  when  = proc.cpu_percent > 80
  kill {
    signal = "TREM" # ERROR: Unknown signal
  }
}

rule "nothing" { # ERROR: Rule has no steps
  class = "customers"
  when  = proc.cpu_percent > 80
}

rule "first-waits" {
  class = "customers"
  when  = proc.cpu_percent > 80
  report { # ERROR: First step cannot wait
    after = "5m"
  }
  kill {
    after = "10m"
  }
}

rule "out-of-order" {
  class = "customers"
  when  = proc.cpu_percent > 80
  renice {
    nice = 19
  }
  stop {
    after = "1h"
  }
  kill { # ERROR: Steps out of order
    after = "30m"
  }
}

rule "after-kill" {
  class = "customers"
  when  = proc.cpu_percent > 80
  kill {}
  report { # ERROR: kill ends the process, so it must be the last step
    after = "1m"
  }
}

rule "unknown-step-attr" {
  class = "customers"
  when  = proc.cpu_percent > 80
  stop {
    signal = "STOP" # ERROR: Unsupported argument
  }
}

# A step whose own values are wrong is reported once; the order checks do
# not pile a second, bogus error on it.
rule "bad-middle-step" {
  class = "customers"
  when  = proc.cpu_percent > 80
  report {}
  stop {
    after = "2h"
  }
  renice {
    after = "soon" # ERROR: Bad duration
    nice  = 19
  }
  kill {
    after = "3h"
    grace = "a while" # ERROR: Bad duration
  }
}

rule "two-after-kill" {
  class = "customers"
  when  = proc.cpu_percent > 80
  renice {
    nice = 19
  }
  kill {
    signal = "KILL"
  }
  stop { # ERROR: Step after kill
  }
  report {
  }
}
