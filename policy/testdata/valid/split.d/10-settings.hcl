# A policy directory: files are read in name order and merged.
guardd {
  mode = "monitor"
}

class "customers" {
  uids = ["1000-59999"]
}
