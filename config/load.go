package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads, decodes and validates the configuration file at path. Problems
// in the file are returned together as Errors, each naming path; a file that
// cannot be read gives the error of os.ReadFile (errors.Is fs.ErrNotExist
// works), wrapped.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a configuration. name is the file name used in
// error messages. An empty document gives Default().
//
// The data is decoded into a yaml.Node tree first, so that every problem has
// a line and column, then into the structs on top of the defaults, strictly:
// an unknown key, a duplicate key or a value of the wrong type is an error.
// Then the result is validated. Every problem found is returned, as Errors
// ordered by position; the Config is nil if there is any.
func Parse(name string, data []byte) (*Config, error) {
	root, err := parseNode(name, data)
	if err != nil {
		return nil, err
	}
	c := Default()
	d := newDecoder(name)
	if root != nil {
		d.decode(root, reflect.ValueOf(c).Elem(), "")
	} else {
		d.pos[""] = position{1, 1}
	}
	c.file, c.pos = name, d.pos

	errs := d.errs
	var verrs Errors
	if d.nodes < maxNodes { // else the values are half decoded
		if err := c.Validate(); err != nil {
			verrs = err.(Errors)
		}
	}
	for _, e := range verrs {
		if !covered(errs, e.Path) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return c, nil
}

// covered reports whether a decode error was already reported at path or
// at one of its ancestors: validating a value that could not be decoded
// would only repeat the problem.
func covered(errs Errors, path string) bool {
	for _, e := range errs {
		if e.Path == path || (e.Path != "" && strings.HasPrefix(path, e.Path) &&
			(path[len(e.Path)] == '.' || path[len(e.Path)] == '[')) {
			return true
		}
	}
	return false
}

// parseNode parses data as one YAML document and returns its root node, or
// nil for an empty document.
func parseNode(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, Errors{syntaxError(name, data, err)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, Errors{{File: name, Line: next.Line, Col: next.Column,
			Msg: "a second YAML document (want one document per file)"}}
	case !errors.Is(err, io.EOF):
		return nil, Errors{syntaxError(name, data, err)}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	return root, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error, which carries a line at best,
// into an Error.
func syntaxError(name string, data []byte, err error) *Error {
	e := &Error{File: name, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = "invalid YAML: " + m[2]
		if l := errorLine(data, m[2]); l > e.Line {
			e.Line = l
		}
	} else {
		// yaml.v3 gives no line when the stream ends inside a value (an
		// unclosed quote or bracket): the problem is found at the end.
		e.Line = bytes.Count(data, []byte("\n")) + 1
		if len(data) > 0 && data[len(data)-1] == '\n' {
			e.Line--
		}
	}
	return e
}

// errorLine finds the line a YAML syntax error is on. For a structure
// error (a key indented one space too few), yaml.v3 gives the line where
// the enclosing mapping or list starts, which can be far above the
// mistake. The first prefix of the document, in whole lines, that fails
// with the same message ends on the offending line. 0 if none does (the
// document is parsed once per line, so only files of a reasonable size
// are searched).
func errorLine(data []byte, msg string) int {
	const maxLines = 5000
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxLines {
		return 0
	}
	end := 0
	for i, l := range lines {
		end += len(l)
		var n yaml.Node
		err := yaml.Unmarshal(data[:end], &n)
		if err == nil {
			continue
		}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil && m[2] == msg {
			return i + 1
		}
	}
	return 0
}
