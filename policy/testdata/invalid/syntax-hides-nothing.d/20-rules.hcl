rule "cpu-hog" {
  class = "customerz" # ERROR: There is no class "customerz"
  when  = proc.cpu_percent > 80
  report {}
}
rule "web-hog" {
  class = "web"
  when  = proc.cpu_percent > 80
  for   = "5x" # ERROR: Bad duration
  report {}
}
