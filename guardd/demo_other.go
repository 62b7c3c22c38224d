//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

func runDemo(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("demo: not supported on this OS yet")
}

func runOffender([]string) error { return errors.New("not supported on this OS") }
