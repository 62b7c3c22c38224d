rule "b" {
  class = "customers"
  when  = proc.state == 1 # ERROR: Comparing different types
  kill {}
}

rule "a" { # ERROR: Rule "a" is already defined at
  class = "customers"
  when  = proc.cpu_percent > 80
  kill {}
}
