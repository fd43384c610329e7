package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
)

// cmdCheck validates a configuration file and reports every problem in it,
// one per line, followed by a count. A valid file gets a short summary of
// what it protects before the verdict. With --dump it prints the effective
// configuration, defaults filled in, on stdout. Exit status: 0 valid, 1
// invalid or unreadable, 2 bad usage.
func cmdCheck(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the configuration `file` to check (or give it as the argument)")
	dump := fs.Bool("dump", false, "print the effective configuration, with defaults, on stdout")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: kapkan check [--dump] [--config] FILE")
		fmt.Fprintln(fs.Output(), "validate a configuration file and print every problem with its file:line:col")
		fs.PrintDefaults()
	}

	positional, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	switch {
	case len(positional) > 1:
		fmt.Fprintf(stderr, "kapkan check: one file at a time, got %d\n", len(positional))
		fs.Usage()
		return 2
	case len(positional) == 1 && *path != "" && positional[0] != *path:
		fmt.Fprintf(stderr, "kapkan check: two files given, --config %s and %s\n", *path, positional[0])
		fs.Usage()
		return 2
	case len(positional) == 1:
		*path = positional[0]
	case *path == "":
		fmt.Fprintln(stderr, "kapkan check: no configuration file given")
		fs.Usage()
		return 2
	}

	cfg, err := config.Load(*path)
	var warnings config.Errors
	if err == nil {
		// What run checks beyond the file itself, short of opening sockets.
		warnings, err = daemon.Preflight(cfg)
		for _, w := range warnings {
			fmt.Fprintln(stderr, warningLine(w))
		}
	}
	if err != nil {
		var errs config.Errors
		if !errors.As(err, &errs) {
			fmt.Fprintln(stderr, err)
			fmt.Fprintf(stderr, "%s: 1 error\n", *path)
			return 1
		}
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		noun := "errors"
		if len(errs) == 1 {
			noun = "error"
		}
		fmt.Fprintf(stderr, "%s: %d %s\n", *path, len(errs), noun)
		return 1
	}
	ok := "ok"
	if n := len(warnings); n == 1 {
		ok = "ok, 1 warning"
	} else if n > 1 {
		ok = fmt.Sprintf("ok, %d warnings", n)
	}
	if !*dump {
		writeConfigSummary(stdout, cfg)
		fmt.Fprintf(stdout, "%s: %s\n", *path, ok)
		return 0
	}
	out, err := cfg.Dump()
	if err != nil {
		fmt.Fprintf(stderr, "kapkan check: %v\n", err)
		return 1
	}
	// stdout stays pure YAML, so that it can be redirected to a file.
	writeConfigSummary(stderr, cfg)
	fmt.Fprintf(stderr, "%s: %s\n", *path, ok)
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "kapkan check: write dump: %v\n", err)
		return 1
	}
	return 0
}

// warningLine formats a warning as an error line with "warning: " before
// its message.
func warningLine(w *config.Error) string {
	c := *w
	c.Msg = "warning: " + c.Msg
	return c.Error()
}
