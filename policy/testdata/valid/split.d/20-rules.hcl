# This rule names a class defined in another file of the directory.
rule "cpu-hog" {
  class = "customers"
  when  = proc.cpu_percent > 80
  for   = "5m"
  renice {
    nice = 19
  }
}
