# Misspelled names: each gets its own error and, where one is close, a
# suggestion. Every error of the file is reported at once.
class "customers" {
  uids = ["1000-59999"]
}

rul "cpu-hog" { # ERROR: Did you mean "rule"?
  class = "customers"
}

rule "cpu" {
  class   = "customers"
  when    = proc.cpu_precent > 80 # ERROR: Did you mean proc.cpu_percent?
  cooldwn = "1h" # ERROR: Did you mean "cooldown"?
  renise { # ERROR: Did you mean "renice"?
    nice = 19
  }
}

rule "fn" {
  class = "customers"
  when  = globb(proc.exe, "/tmp/**") # ERROR: Did you mean glob()?
  kill {}
}

rule "bare" {
  class = "customers"
  when  = cpu_percent > 80 # ERROR: Did you mean proc.cpu_percent?
  kill {}
}

rule "class-typo" {
  class = "customer" # ERROR: Did you mean "customers"?
  when  = proc.cpu_percent > 80
  kill {}
}

rule "no-such-class" {
  class = "resellers" # ERROR: There is no class "resellers"
  when  = proc.cpu_percent > 80
  kill {}
}
