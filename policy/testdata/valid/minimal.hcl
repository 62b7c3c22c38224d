# The smallest useful policy: one class, one rule, defaults for the rest.
class "customers" {
  uids = ["1000-59999"]
}

rule "cpu-hog" {
  class = "customers"
  when  = proc.cpu_percent > 80
  renice {
    nice = 19
  }
}
