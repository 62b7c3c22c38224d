//go:build !linux

package main

import "github.com/guardd/guardd/policy"

// The probes are Linux's for now: on other systems guardd says nothing
// rather than guess.
func selfCheck(p *policy.Policy) []probe { return nil }

func runProbes(p *policy.Policy, inDaemon bool) []probe { return nil }

const probeSyscallCmd = "_probe-syscall"

func runSyscallProbe(args []string) int { return 2 }

func quotactlProbe() probe { return probe{Name: "quotactl_fd"} }
