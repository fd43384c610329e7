package main

import (
	"context"
	"fmt"
	"io"
)

func cmdReplay(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "kapkan replay: not implemented yet")
	return 1
}
