// Command kapkan is the one Kapkan binary: the daemon (run), and the tools
// operators use around it (check, replay, simulate, test, ban, unban,
// top, import-fastnetmon, version).
//
// main.go is the composition root: only this package knows every stage and
// wires them together.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand. It returns the process exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"run":      {"start the daemon", cmdRun},
	"check":    {"validate a configuration file", cmdCheck},
	"replay":   {"decode recorded flows from pcap/pcapng files", cmdReplay},
	"version":  {"print the version and commit", cmdVersion},
	"test":     {"run the rule tests (*_test.yaml) of a rule directory", cmdTest},
	"simulate": {"send generated flow telemetry (background and attacks) to a collector", cmdSimulate},
	"ban":      {"mitigate an address now, through the running daemon (same safety checks)", cmdBan},
	"unban":    {"withdraw the mitigations of an address or inside a prefix, through the running daemon", cmdUnban},
	"top":      {"live view of the running daemon: top targets, attacks, mitigations, exporters", cmdTop},
	"incident": {"export an attack's recorded telemetry and verdict from the running daemon as a rule test", cmdIncident},

	"import-fastnetmon": {"convert a FastNetMon Community configuration into a Kapkan one", cmdImportFastNetMon},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: kapkan <command> [flags]")
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-17s %s\n", n, commands[n].summary)
	}
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "kapkan: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return c.run(ctx, args[1:], stdout, stderr)
}
