package config

import (
	"reflect"
	"strings"
)

// liveKeys are the settings a running daemon applies on reload, by key
// path; a key below one of them is live too. Every other key needs a
// restart: a key added to the schema is restart-only until it is named
// here, so a reload never half-applies a setting its component cannot
// change.
//
// What decides: the engine rebuilds its prefix table live (hostgroups,
// cool-down, hysteresis) but not its shards or window; the mitigation
// guard takes new limits; rules are reloaded from their directories.
// Listeners, the API server, the BGP speaker and its identity, the state
// file, the log format and dry_run are built once at start (dry_run on
// purpose: leaving it must be a deliberate restart, never the side effect
// of a reload).
var liveKeys = []string{
	"log.level",
	"detection.cooldown",
	"detection.hysteresis_percent",
	"hostgroups",
	"rules.dirs",
	"rules.shadow_dirs",
	"rules.poll_interval",
	"mitigation.allowlist",
	"mitigation.max_active_blackholes",
	"mitigation.max_active_flowspec",
	"mitigation.max_new_per_minute",
	"mitigation.ttl",
	"mitigation.max_ttl",
	"mitigation.flap_window",
	"mitigation.flap_multiplier",
}

// IsLive reports whether the setting at key path (as Diff names it, like
// mitigation.ttl or hostgroups) is applied by a reload without a restart.
func IsLive(key string) bool {
	for _, k := range liveKeys {
		if key == k || strings.HasPrefix(key, k+".") || strings.HasPrefix(key, k+"[") {
			return true
		}
	}
	return false
}

// Changes are the settings that differ between two configurations, by key
// path, in schema order.
type Changes struct {
	// Live are applied by a reload.
	Live []string
	// Restart need a restart: a reload leaves them as they run.
	Restart []string
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool { return len(c.Live) == 0 && len(c.Restart) == 0 }

// Diff compares two valid configurations and names each setting that
// differs by its key path: sections are followed down to their keys, and a
// list (hostgroups, mitigation.bgp.peers, ingest.exporters) is one setting.
// An empty list and an absent one are the same.
func Diff(old, next *Config) Changes {
	var ch Changes
	diffValue(reflect.ValueOf(old).Elem(), reflect.ValueOf(next).Elem(), "", &ch)
	return ch
}

func diffValue(a, b reflect.Value, path string, ch *Changes) {
	if isSection(a.Type()) {
		f := fieldsOf(a.Type())
		for i := range a.NumField() {
			sf := a.Type().Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if _, ok := f.index[name]; !ok {
				continue
			}
			diffValue(a.Field(i), b.Field(i), join(path, name), ch)
		}
		return
	}
	if equal(a, b) {
		return
	}
	if IsLive(path) {
		ch.Live = append(ch.Live, path)
	} else {
		ch.Restart = append(ch.Restart, path)
	}
}

// equal compares two values of one type deeply, taking an empty list and
// an absent one (nil) as the same, at any depth.
func equal(a, b reflect.Value) bool {
	switch {
	case a.Kind() == reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equal(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case isSection(a.Type()):
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() && !equal(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(a.Interface(), b.Interface())
	}
}

// isSection reports whether t is one of the schema's mappings, followed
// down to its keys, rather than a value compared whole (a Duration, an
// address).
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t.PkgPath() == reflect.TypeFor[Config]().PkgPath() &&
		t != reflect.TypeFor[Duration]()
}

// Reload loads the file at path again and compares it with the running
// configuration. When the file has a problem, every one is returned (as
// Errors, each with its file, line and column) with no configuration and no
// changes: the running configuration stays as it is.
func Reload(running *Config, path string) (*Config, Changes, error) {
	next, err := Load(path)
	if err != nil {
		return nil, Changes{}, err
	}
	return next, Diff(running, next), nil
}
