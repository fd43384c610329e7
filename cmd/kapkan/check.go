package main

import (
	"context"
	"fmt"
	"io"
)

// cmdCheck validates a configuration file. Placeholder until config/ lands.
func cmdCheck(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "kapkan check: not implemented yet")
	return 1
}
