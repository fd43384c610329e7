package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// untaggedSecrets walks the schema from t and returns the paths of the
// fields whose key looks like a secret but that have no secret tag, and of
// the fields whose tag is not one Redacted understands.
func untaggedSecrets(t reflect.Type, path string, seen map[reflect.Type]bool) []string {
	for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() != configPkg || seen[t] {
		return nil
	}
	seen[t] = true
	defer delete(seen, t)
	var bad []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		p := path
		if key != "" {
			p = strings.TrimPrefix(path+"."+key, ".")
		}
		switch tag, tagged := f.Tag.Lookup(secretTag); {
		case tagged && tag == secretRef:
		case tagged && tag == secretRedact:
			if k := f.Type.Kind(); k != reflect.String && (k != reflect.Slice || f.Type.Elem().Kind() != reflect.String) {
				bad = append(bad, p+": secret:\"redact\" on a "+f.Type.String()+" (only strings and lists of strings are redacted)")
			}
		case tagged:
			bad = append(bad, p+": secret tag "+tag+" (want redact or ref)")
		case key != "" && secretKey.MatchString(key) && !isSchemaStruct(f.Type):
			bad = append(bad, p+`: looks like a secret but has no secret tag (secret:"redact" if the value is one, secret:"ref" if it names a file or variable holding one)`)
		default:
			bad = append(bad, untaggedSecrets(f.Type, p, seen)...)
		}
	}
	return bad
}

// isSchemaStruct reports whether t is a struct of the schema, or a list
// of them: its fields are checked one by one.
func isSchemaStruct(t reflect.Type) bool {
	for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && t.PkgPath() == configPkg
}

// TestSecretFieldsTagged fails when a field that looks like a secret is
// added to the schema without saying whether GET /api/v1/config may show
// it.
func TestSecretFieldsTagged(t *testing.T) {
	if bad := untaggedSecrets(reflect.TypeFor[Config](), "", map[reflect.Type]bool{}); len(bad) > 0 {
		t.Errorf("schema fields without a secret decision:\n%s", strings.Join(bad, "\n"))
	}

	// The check fires on a new field like a BGP peer's password.
	type peer struct {
		Address      string `yaml:"address"`
		Password     string `yaml:"password"`
		PasswordFile string `yaml:"password_file" secret:"ref"`
		MD5Key       int    `yaml:"md5_key" secret:"redact"`
	}
	type leaky struct {
		Peers []peer `yaml:"peers"`
		Token string `yaml:"token" secret:"yes"`
	}
	bad := untaggedSecrets(reflect.TypeFor[leaky](), "", map[reflect.Type]bool{})
	got := strings.Join(bad, "\n")
	for _, want := range []string{"peers.password: looks like a secret", "peers.md5_key: secret:\"redact\" on a int", "token: secret tag yes"} {
		if !strings.Contains(got, want) {
			t.Errorf("the check does not fire on %q; it says:\n%s", want, got)
		}
	}
	if strings.Contains(got, "password_file") || strings.Contains(got, "address") {
		t.Errorf("the check fires on a tagged or harmless field:\n%s", got)
	}
}

// fill sets every string of v tagged secret:"redact" or secret:"ref" to
// a marker naming its path, and gives every empty list of schema structs
// one item so the fields inside it are filled too. It returns the markers
// of the secrets.
func fill(v reflect.Value, path string) (secrets, refs []string) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type().PkgPath() != configPkg {
			return nil, nil
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			p := path + "." + key
			switch f.Tag.Get(secretTag) {
			case secretRedact:
				m := "s3cret" + p
				if f.Type.Kind() == reflect.String {
					v.Field(i).SetString(m)
				} else {
					v.Field(i).Set(reflect.ValueOf([]string{m}).Convert(f.Type))
				}
				secrets = append(secrets, m)
			case secretRef:
				m := "/run/ref" + p
				v.Field(i).SetString(m)
				refs = append(refs, m)
			default:
				s, r := fill(v.Field(i), p)
				secrets, refs = append(secrets, s...), append(refs, r...)
			}
		}
	case reflect.Slice:
		if v.Len() == 0 && v.Type().Elem().Kind() == reflect.Struct && v.Type().Elem().PkgPath() == configPkg {
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		}
		for i := range v.Len() {
			s, r := fill(v.Index(i), path)
			secrets, refs = append(secrets, s...), append(refs, r...)
		}
	}
	return secrets, refs
}

// TestRedacted: no secret of the schema survives Redacted, in the JSON
// the API serves or in a YAML dump; what names a secret's file or
// variable is still shown; the original configuration is not changed.
func TestRedacted(t *testing.T) {
	c := Default()
	secrets, refs := fill(reflect.ValueOf(c).Elem(), "")
	if len(secrets) < 6 || len(refs) < 10 {
		t.Fatalf("filled %d secrets and %d references: the schema walk missed fields", len(secrets), len(refs))
	}
	r := c.Redacted()
	var js strings.Builder
	enc := json.NewEncoder(&js) // as gin's PureJSON
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	dump, err := r.Dump()
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{js.String(), string(dump)} {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("secret %s is shown:\n%.2000s", s, out)
			}
		}
		for _, ref := range refs {
			if !strings.Contains(out, ref) {
				t.Errorf("reference %s is not shown", ref)
			}
		}
		if n := strings.Count(out, RedactedValue); n != len(secrets) {
			t.Errorf("%d values redacted, want %d", n, len(secrets))
		}
	}
	orig, _ := json.Marshal(c)
	for _, s := range secrets {
		if !strings.Contains(string(orig), s) {
			t.Errorf("Redacted changed the original: %s is gone", s)
		}
	}
	// An empty secret stays empty: the copy says none is set.
	if e := Default().Redacted(); e.Store.ClickHouse.DSN != "" {
		t.Errorf("empty dsn redacted to %q", e.Store.ClickHouse.DSN)
	}
}
