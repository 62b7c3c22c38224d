package main

import (
	"fmt"
	"io"

	"github.com/guardd/guardd/policy"
)

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := flagSet("check", "check [PATH]\n\nValidates a policy file or directory (default: "+defaultPolicyPath()+",\nor the embedded default when it does not exist) and prints every error\nwith its file:line,col, a snippet and a hint. Exit 0 when valid, 1 when not.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return &exitError{code: 2}
	}
	src := policySource{}
	if fs.NArg() == 1 {
		src = policySource{path: fs.Arg(0), explicit: true}
	}
	src = src.resolve()
	p, diags := src.load()
	if len(diags) > 0 {
		policy.PrintDiagnostics(stderr, diags, isTerminal(stderr))
	}
	if diags.HasErrors() {
		return &exitError{code: 1, err: fmt.Errorf("%s: %d error(s); the policy was not accepted", src, len(diags.Errs()))}
	}
	if errs := checkPolicy(p); len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintf(stderr, "%s: %v\n", src, err)
		}
		return &exitError{code: 1, err: fmt.Errorf("%s: %d error(s) outside the policy file (templates, maps, secrets); the policy was not accepted", src, len(errs))}
	}
	fmt.Fprintf(stdout, "%s: OK: %d class(es), %d rule(s), mode %s, interval %s\n",
		src, len(p.Classes), len(p.Rules), p.Mode, p.Interval)
	return nil
}
