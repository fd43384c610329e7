// Package builtin is the rule set shipped inside the binary: classifiers
// for every attack kind Kapkan labels (classify/*.yaml). Operators never
// edit it: their own rule directories add rules and disable built-ins by
// name. Its version follows semver (CHANGELOG.md).
package builtin

import (
	"embed"
	"io/fs"
)

// Version of the built-in rule set.
const Version = "1.1.0"

//go:embed classify/*.yaml ladders/*.yaml classify/captures/*.pcap
var files embed.FS

// Tests returns the built-in rule files with their *_test.yaml cases.
func Tests() fs.FS { return files }

// Classify returns the built-in rule files: classifiers (classify/) and
// escalation ladders (ladders/), with their tests' captures.
func Classify() fs.FS { return files }
