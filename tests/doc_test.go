// Package tests holds guardd's end-to-end tests: they build the real daemon
// and real misbehaving processes (./offender), run the offenders as
// throwaway gdt-* users and watch guardd act on them. They need root and
// Linux; elsewhere the package is empty.
package tests
