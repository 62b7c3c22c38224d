# A file that does not parse is not decoded at all: its classes are
# unknown, so rules in other files that name them get no second error.
class "customers" {
  uids = ["1000-59999" "70000"] # ERROR: Missing item separator
  users = ["bob"]
}
