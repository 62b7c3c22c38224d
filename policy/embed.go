package policy

import (
	_ "embed"

	"github.com/hashicorp/hcl/v2"
)

// DefaultSource is the embedded default policy: what guardd enforces with
// no configuration, and what `guardd default-policy` prints.
//
//go:embed default.hcl
var DefaultSource []byte

// DefaultName is the name diagnostics and audit lines give the default.
const DefaultName = "embedded:default.hcl"

// Default compiles the embedded default policy.
func Default() (*Policy, hcl.Diagnostics) {
	p, diags := Parse(map[string][]byte{DefaultName: DefaultSource})
	if p != nil {
		p.Source = DefaultName
	}
	return p, diags
}
