package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a configuration file, at the node that causes it.
type Error struct {
	// File is the name the configuration was parsed under; empty for a
	// Config built in code.
	File string
	// Line and Col are 1-based; 0 when unknown.
	Line, Col int
	// Path is the key path of the offending node, like
	// hostgroups[0].prefixes[1]; empty for the file as a whole.
	Path string
	// Msg says what was found and what was expected.
	Msg string
}

// Error formats the problem as FILE:LINE:COL: PATH: MSG, leaving out the
// parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
		if e.Col > 0 {
			b.WriteString(strconv.Itoa(e.Col))
			b.WriteByte(':')
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the problems found in one configuration, ordered by
// position. Load, Parse and Validate return it as their error, so a caller
// can count and print them with errors.As:
//
//	var errs config.Errors
//	if errors.As(err, &errs) { ... }
type Errors []*Error

// Error lists every problem, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems as errors, as errors.Join would.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns es as an error, or nil when there is no problem.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// sort orders problems by position; problems without one keep their order
// and come last.
func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}
