package main

// The demo's policy uses variables that capabilities add to the language
// (proc.lock_*): the tests that check it import the registry.
import _ "github.com/guardd/guardd/capability/all"
