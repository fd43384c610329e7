package config

import "fmt"

// Warnings returns what the daemon accepts but an operator most likely did
// not mean, positioned like errors: hostgroups that cannot report an
// attack. `kapkan run` logs them and starts; `kapkan check` prints them and
// exits 0.
func (c *Config) Warnings() Errors {
	var ws Errors
	for i, hg := range c.Hostgroups {
		t := hg.Thresholds
		path := fmt.Sprintf("hostgroups[%d].thresholds", i)
		switch {
		case t.Disabled:
			ws = append(ws, c.ErrorAt(path+".disabled",
				"detection is disabled for hostgroup %q: its traffic is counted, no attack is reported", hg.Name))
		case t.Incoming == (ThresholdSet{}) && t.Outgoing == (ThresholdSet{}) &&
			t.IncomingTotal == (ThresholdSet{}) && t.OutgoingTotal == (ThresholdSet{}):
			ws = append(ws, c.ErrorAt(path,
				"hostgroup %q has no thresholds: its traffic is counted, no attack is reported (want at least one threshold, like incoming: {pps: 100000})", hg.Name))
		}
	}
	return ws
}

// ErrorAt returns a problem at path, positioned at the key or at its
// nearest ancestor the file has. It is for problems found outside this
// package, such as a rule directory that does not exist.
func (c *Config) ErrorAt(path, format string, args ...any) *Error {
	p := c.at(path)
	return &Error{File: c.file, Line: p.line, Col: p.col, Path: path, Msg: fmt.Sprintf(format, args...)}
}
