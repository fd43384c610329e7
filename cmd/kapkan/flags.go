package main

import (
	"errors"
	"flag"
	"fmt"
)

// flagStatus is the exit code of a command whose flags did not parse: 0
// when help was asked for (-h, --help: the flag package has printed the
// usage), 2 for a bad flag (it has printed the problem and the usage).
func flagStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// setUsage makes a command's usage start with its usage line, like the
// other commands', then list its flags.
func setUsage(fs *flag.FlagSet, line string) {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), line)
		fs.PrintDefaults()
	}
}
