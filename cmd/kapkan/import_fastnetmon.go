package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/fnmimport"
)

// cmdImportFastNetMon converts a FastNetMon Community configuration into a
// Kapkan one, on stdout or into --output, with a comment on every setting.
// Exit status: 0 converted, 1 unreadable or not FastNetMon's format (every
// problem with file:line), 2 bad usage.
func cmdImportFastNetMon(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import-fastnetmon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("output", "", "write the configuration to this `file` instead of stdout (an existing file is not overwritten)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: kapkan import-fastnetmon [--output kapkan.yaml] /etc/fastnetmon.conf [networks_list] [networks_whitelist]")
		fmt.Fprintln(fs.Output(), "convert a FastNetMon Community configuration into a Kapkan one (dry_run: true), naming every setting:")
		fmt.Fprintln(fs.Output(), "above the key it became, or at the end with why it has no equivalent. The networks files default")
		fmt.Fprintln(fs.Output(), "to the conf's networks_list_path and white_list_path.")
		fs.PrintDefaults()
	}
	positional, err := parseArgs(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(positional) < 1 || len(positional) > 3 {
		fmt.Fprintf(stderr, "kapkan import-fastnetmon: want 1 to 3 files, got %d\n", len(positional))
		fs.Usage()
		return 2
	}
	opts := fnmimport.Options{}
	if len(positional) > 1 {
		opts.NetworksList = positional[1]
	}
	if len(positional) > 2 {
		opts.Whitelist = positional[2]
	}
	name := positional[0]
	data, err := os.ReadFile(name)
	if err != nil {
		fmt.Fprintf(stderr, "kapkan import-fastnetmon: read FastNetMon configuration: %v\n", err)
		return 1
	}
	res, err := fnmimport.Import(name, data, opts)
	if err != nil {
		var errs config.Errors
		if !errors.As(err, &errs) {
			fmt.Fprintf(stderr, "kapkan import-fastnetmon: %v\n", err)
			return 1
		}
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintf(stderr, "%s: %d problems, nothing written\n", name, len(errs))
		return 1
	}
	counts := map[fnmimport.Status]int{}
	for _, s := range res.Settings {
		counts[s.Status]++
	}
	if *output == "" {
		if _, err := stdout.Write(res.YAML); err != nil {
			fmt.Fprintf(stderr, "kapkan import-fastnetmon: write: %v\n", err)
			return 1
		}
	} else {
		f, err := os.OpenFile(*output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err == nil {
			_, err = f.Write(res.YAML)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			fmt.Fprintf(stderr, "kapkan import-fastnetmon: write configuration: %v\n", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "%s: %d settings: %d mapped, %d already Kapkan's behaviour, %d not mapped (each named in a comment); dry_run: true\n",
		name, len(res.Settings), counts[fnmimport.Mapped], counts[fnmimport.Same], counts[fnmimport.Unmapped])
	if *output != "" {
		fmt.Fprintf(stderr, "next: kapkan check --config %s\n", *output)
	}
	return 0
}
