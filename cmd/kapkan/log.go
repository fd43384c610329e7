package main

import (
	"flag"
	"io"
	"log/slog"

	"github.com/kapkan-io/kapkan/daemon"
)

// newLogger builds the process logger: text or JSON lines at the given level.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	lv := new(slog.LevelVar)
	lv.Set(daemon.ParseLevel(level))
	return newLoggerVar(w, lv, format)
}

// newLoggerVar is newLogger with a level that can change while it runs (a
// configuration reload).
func newLoggerVar(w io.Writer, lv *slog.LevelVar, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parseArgs parses flags that may come before, between or after positional
// arguments (the standard flag package stops at the first positional one),
// and returns the positional arguments. "--" ends flag parsing.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
