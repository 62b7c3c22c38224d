# A syntax error in one file hides no mistake of the others: the unknown
# class of 20-rules.hcl is reported in the same pass.
class "web" {
  uids = ["1000-1999"]
}
rule "x" {
  when = # ERROR: Invalid expression
}
