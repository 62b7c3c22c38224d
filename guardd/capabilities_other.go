//go:build !freebsd

package main

import "github.com/guardd/guardd/capability"

// osCapabilities are the capabilities only one OS has.
var osCapabilities []capability.Factory
