//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
	"time"
)

func runDemo(context.Context, string, time.Duration, io.Writer, io.Writer) error {
	return errors.New("not supported on this OS yet")
}

func runOffender([]string) error { return errors.New("not supported on this OS") }
