package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func cmdVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	setUsage(fs, "usage: kapkan version   (prints the version, the commit and the Go release)")
	if rest, err := parseArgs(fs, args); err != nil {
		return flagStatus(err)
	} else if len(rest) > 0 {
		fmt.Fprintf(stderr, "kapkan version: unexpected argument %q\n", rest[0])
		return 2
	}
	fmt.Fprintf(stdout, "kapkan %s (commit %s, %s)\n", version, buildCommit(), runtime.Version())
	return 0
}
