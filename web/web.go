// Package web holds the dashboard: the page, scripts and styles the daemon
// serves at / (see api.Deps.Dashboard). They are plain files written for
// the browser as they are (ES modules, no build step), embedded in the
// binary, so the dashboard works offline and `go build` needs no npm.
//
// The browser tests and their npm packages live beside them (test/,
// package.json); only static/ is embedded.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// Files are the dashboard's files, index.html at the root.
func Files() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // "static" is a valid path: cannot happen
	}
	return sub
}
