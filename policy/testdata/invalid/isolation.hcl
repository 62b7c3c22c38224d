class "customers" {
  uids = ["1000-59999"]
}

limits "cpu-zero" {
  class = "customers"
  cpu   = 0 # ERROR: Bad cpu limit
}

limits "memory-decimal" {
  class  = "customers"
  memory = "2GB" # ERROR: decimal units are ambiguous here
}

limits "memory-tiny" {
  class  = "customers"
  memory = "1MiB" # ERROR: below the smallest that makes sense
}

limits "memory-number" {
  class  = "customers"
  memory = 2048 # ERROR: Expected a string
}

limits "io-word" {
  class       = "customers"
  io_read_bps = "fast" # ERROR: does not start with a number
}

limits "burst-reads-user" {
  class = "customers"
  cpu   = 100
  burst {
    when = user.procs < 10 # ERROR: Burst condition reads user.procs
    cpu  = 200
  }
}

limits "burst-lower" {
  class = "customers"
  cpu   = 100
  burst {
    when = host.load1 < host.ncpu
    cpu  = 50 # ERROR: Burst below the limit
  }
}

limits "burst-unset" {
  class = "customers"
  cpu   = 100
  burst {
    when   = host.load1 < host.ncpu
    memory = "4GiB" # ERROR: Burst of a limit that is not set
  }
}

limits "burst-empty" {
  class = "customers"
  cpu   = 100
  burst { # ERROR: Empty burst
    when = host.load1 < 1
  }
}

limits "burst-twice" {
  class = "customers"
  cpu   = 100
  burst {
    when = host.load1 < 1
    cpu  = 200
  }
  burst { # ERROR: Duplicate burst block
    when = host.load1 < 2
    cpu  = 300
  }
}

limits "burst-number" {
  class = "customers"
  cpu   = 100
  burst {
    when = host.load1 + 1 # ERROR: Condition is not true or false
    cpu  = 200
  }
}
