package config

import (
	"reflect"
	"regexp"
)

// Redaction is driven by the `secret` struct tag of the schema's fields:
//
//	secret:"redact"  the value may be a secret (a password, a token, a URL
//	                 or DSN that carries one): Redacted replaces it
//	secret:"ref"     the value only says where a secret is (a file path, an
//	                 environment variable's name): it is shown as it is
//
// A test walks the schema and fails on a field whose key looks like a
// secret (secretKey) but has no tag, so a new secret field cannot be shown
// by mistake.
const (
	secretTag    = "secret"
	secretRedact = "redact"
	secretRef    = "ref"
)

// RedactedValue replaces a secret in Redacted's copy.
const RedactedValue = "<redacted>"

// secretKey matches the YAML keys that look like they hold a secret or
// point at one.
var secretKey = regexp.MustCompile(`token|passw|secret|dsn|url|key|credential|auth|cookie|private`)

// Redacted returns a deep copy of the configuration with every value
// tagged secret:"redact" replaced by RedactedValue (an empty value stays
// empty, so the copy still says whether one is set). It is what the API
// shows; c itself is not changed.
func (c *Config) Redacted() *Config {
	out := reflect.New(reflect.TypeFor[Config]())
	out.Elem().Set(reflect.ValueOf(*c))
	redact(out.Elem())
	return out.Interface().(*Config)
}

// redact replaces the secrets held in v, which must be settable, cloning
// every slice on the way so the original's backing arrays are not written.
func redact(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		if t.PkgPath() != configPkg {
			return // netip and time values hold no secret
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			fv := v.Field(i)
			if f.Tag.Get(secretTag) == secretRedact {
				redactValue(fv)
				continue
			}
			redact(fv)
		}
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		v.Set(c)
		for i := range c.Len() {
			redact(c.Index(i))
		}
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(v.Elem())
		v.Set(p)
		redact(p.Elem())
	}
}

// redactValue replaces a secret string, or each string of a secret list.
func redactValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.Len() > 0 {
			v.SetString(RedactedValue)
		}
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		v.Set(c)
		for i := range c.Len() {
			redactValue(c.Index(i))
		}
	default:
		// A tag on another kind is refused by the schema test.
	}
}

var configPkg = reflect.TypeFor[Config]().PkgPath()
