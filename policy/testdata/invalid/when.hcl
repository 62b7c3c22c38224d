class "customers" {
  uids = ["1000-59999"]
}

rule "not-bool" {
  class = "customers"
  when  = proc.cpu_percent * 2 # ERROR: Condition is not true or false
  kill {}
}

rule "quoted" {
  class = "customers"
  when  = "proc.cpu_percent > 80" # ERROR: this one is a string
  kill {}
}

rule "host-only" {
  class = "customers"
  when  = host.load1 > 20 # ERROR: Condition names no process or user
  kill {}
}

rule "constant" {
  class = "customers"
  when  = true # ERROR: must use at least one proc.*, user.* or fs.* variable
  kill {}
}

rule "str-vs-num" {
  class = "customers"
  when  = proc.state == 1 # ERROR: Comparing different types
  kill {}
}

rule "num-vs-str" {
  class = "customers"
  when  = proc.cpu_percent > "80" # ERROR: > needs a number here, but this is a string
  kill {}
}

rule "interpolation" {
  class = "customers"
  when  = "user-${proc.user}" == "user-bob" # ERROR: String interpolation is not supported
  kill {}
}

rule "pattern-var" {
  class = "customers"
  when  = glob(proc.exe, proc.cmdline) # ERROR: Pattern must be a constant
  kill {}
}

rule "pattern-list-var" {
  class = "customers"
  when  = startswith(proc.exe, ["/tmp/", proc.user]) # ERROR: Pattern must be a constant
  kill {}
}

rule "bad-regex" {
  class = "customers"
  when  = regex(proc.comm, "(unclosed") # ERROR: missing closing )
  kill {}
}

rule "bad-glob" {
  class = "customers"
  when  = glob(proc.exe, "/tmp/***") # ERROR: is ambiguous
  kill {}
}

rule "arity" {
  class = "customers"
  when  = lower(proc.comm, proc.exe) == "x" # ERROR: Wrong number of arguments
  kill {}
}

rule "not-a-bool" {
  class = "customers"
  when  = !proc.cpu_percent # ERROR: ! needs a bool here
  kill {}
}

rule "and-num" {
  class = "customers"
  when  = proc.cpu_percent && proc.exe_deleted # ERROR: && and || needs a bool here
  kill {}
}

rule "ternary-types" {
  class = "customers"
  when  = (proc.exe_deleted ? 1 : "x") == 1 # ERROR: Both results must have the same type
  kill {}
}

rule "index" {
  class = "customers"
  when  = proc["pid"] > 1 # ERROR: Unknown variable proc[...]
  kill {}
}

rule "for-expr" {
  class = "customers"
  when  = length([for s in ["a"] : s]) > 0 # ERROR: Unsupported expression
  kill {}
}

rule "null" {
  class = "customers"
  when  = proc.exe == null # ERROR: Conditions cannot use null
  kill {}
}

rule "list-eq" {
  class = "customers"
  when  = ["a"] == [proc.comm] # ERROR: Cannot compare lists
  kill {}
}

rule "both-sides" {
  class = "customers"
  when  = proc.cpu_precent > 1 || user.prcs > 2 # ERROR: Unknown variable proc.cpu_precent
  kill {}
}
