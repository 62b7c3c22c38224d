package policy_test

// The tests of this package read the default policy and tables of every
// variable, which need the whole language: each capability adds its own
// schema when its package is imported, so the test binary imports the
// registry (an external test package may; policy itself imports none).
import _ "github.com/guardd/guardd/capability/all"
