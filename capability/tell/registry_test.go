package tell_test

// Some tests of this package read the default policy, which uses every
// capability's variables: the test binary imports the registry, which adds
// them (an external test package may import it; tell cannot).
import _ "github.com/guardd/guardd/capability/all"
