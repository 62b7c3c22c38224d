class "customers" {
  uids = [
    "1000-59999",
    "5000-6000", # ERROR: overlaps 1000-59999
    "60000",
    60000, # ERROR: Overlapping uid ranges
    "5000-4000", # ERROR: the first uid is above the last
    "abc", # ERROR: is not a uid or a range
    "-5", # ERROR: Bad uid range
    70000.5, # ERROR: Bad uid range
    "99999999999", # ERROR: Bad uid range
    true, # ERROR: Bad uid
  ]
}

class "customers" { # ERROR: Class "customers" is already defined at
  uids = ["70000"]
}

class "bad name!" { # ERROR: Bad class name
  users = ["bob"]
}

class "nobody" { # ERROR: Empty class
}

class "listless" {
  uids = "1000-2000" # ERROR: uids must be a list
}

class "emptyuser" {
  users = ["bob", ""] # ERROR: Empty string
}

class "extra" "label" { # ERROR: Extraneous label for class
  uids = ["80000"]
}

protect {
  uids = ["100-200"]
}

protect {
  uids = ["150"] # ERROR: Overlapping uid ranges
}

rule "r" {
  class = "customers"
  when  = proc.cpu_percent > 80
  kill {}
}

rule "r" { # ERROR: Duplicate rule
  class = "customers"
  when  = proc.cpu_percent > 80
  kill {}
}

rule { # ERROR: Missing name for rule
  class = "customers"
}
