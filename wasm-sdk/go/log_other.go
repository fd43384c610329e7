//go:build !wasip1

package kapkan

import (
	"fmt"
	"os"
)

// hostLog prints to stderr outside WebAssembly (host-side tests).
func hostLog(level int32, msg string) {
	fmt.Fprintf(os.Stderr, "kapkan guest log %d: %s\n", level, msg)
}
