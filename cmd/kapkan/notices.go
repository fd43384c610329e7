package main

import (
	"fmt"
	"io"

	"github.com/kapkan-io/kapkan/config"
)

// warnNothingProtected says when a configuration protects no prefix: then
// flows are decoded and counted, and no attack can ever be detected, which
// a silent replay would hide.
func warnNothingProtected(cfg *config.Config, configPath, cmd string, stderr io.Writer) {
	if len(cfg.Hostgroups) > 0 {
		return
	}
	why := "the configuration has no hostgroups"
	if configPath == "" {
		why = "no --config given"
	}
	fmt.Fprintf(stderr, "kapkan %s: warning: no prefix is protected (%s): flows are decoded and counted, and no attack can be detected; "+
		"give --config with hostgroups to detect attacks\n", cmd, why)
}
