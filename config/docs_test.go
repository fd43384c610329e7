package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const referenceDoc = "../docs/30-configuration.md"

// sharedTypes are documented once, by bare key, in a table of their own,
// rather than under every path they appear at.
var sharedTypes = []reflect.Type{reflect.TypeFor[ThresholdSet]()}

// TestDocsExamples parses every yaml block of the configuration reference.
func TestDocsExamples(t *testing.T) {
	doc := readDoc(t)
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatchIndex(doc, -1)
	if len(blocks) == 0 {
		t.Fatalf("%s has no yaml example", referenceDoc)
	}
	for _, b := range blocks {
		line := strings.Count(doc[:b[2]], "\n") + 1
		t.Run(fmt.Sprintf("line %d", line), func(t *testing.T) {
			if _, err := Parse(fmt.Sprintf("%s:%d", referenceDoc, line), []byte(doc[b[2]:b[3]])); err != nil {
				t.Errorf("example does not parse:\n%v", err)
			}
		})
	}
}

// docRow is one row of a key table: | `key` | type | default | meaning |.
type docRow struct {
	typ, def string
}

// TestDocsKeys checks that the reference has a row for every key, no row
// for a key that does not exist, and the defaults the code applies.
func TestDocsKeys(t *testing.T) {
	for _, p := range docKeyProblems(t, readDoc(t)) {
		t.Errorf("%s %s", referenceDoc, p)
	}
}

// TestDocsKeysCheckFires proves the check catches a key without a row, a
// row for no key, and a wrong default.
func TestDocsKeysCheckFires(t *testing.T) {
	doc := readDoc(t)
	var edited strings.Builder
	for line := range strings.Lines(doc) {
		switch {
		case strings.HasPrefix(line, "| `mitigation.max_new_per_minute` |"):
			continue // a key left undocumented
		case strings.HasPrefix(line, "| `mitigation.ttl` |"):
			line = "| `mitigation.ttl` | duration | `11m` | wrong default |\n"
		}
		edited.WriteString(line)
	}
	edited.WriteString("| `mitigation.max_new_per_hour` | integer | `0` | no such key |\n")
	got := docKeyProblems(t, edited.String())
	want := []string{
		"has no row for `mitigation.max_new_per_minute`",
		"documents `mitigation.max_new_per_hour`, which is not a key",
		"`mitigation.ttl`: documented default is 11m0s, the code's is 10m0s",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("problems of an edited reference:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// docKeyProblems compares the key tables of a reference page with the
// schema and the defaults.
func docKeyProblems(t *testing.T, doc string) []string {
	t.Helper()
	var out []string
	rows := make(map[string]docRow)
	for line := range strings.Lines(doc) {
		cells := strings.Split(strings.TrimSpace(line), "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		key := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if _, dup := rows[key]; dup {
			out = append(out, "documents "+key+" twice")
		}
		rows[key] = docRow{typ: strings.TrimSpace(cells[2]), def: strings.Trim(strings.TrimSpace(cells[3]), "`")}
	}

	want := documentedKeys(reflect.TypeFor[Config](), "", true)
	for _, k := range want {
		if _, ok := rows[k]; !ok {
			out = append(out, fmt.Sprintf("has no row for `%s`", k))
		}
	}
	for k, row := range rows {
		typ, ok := typeAt(k)
		if !ok {
			out = append(out, fmt.Sprintf("documents `%s`, which is not a key", k))
			continue
		}
		if p := checkDocDefault(t, k, typ, row.def); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkDocDefault compares a documented default with the one in the code:
// Default() for keys outside lists, the zero value inside list items and
// threshold sets. It returns the problem, or "".
func checkDocDefault(t *testing.T, key string, typ reflect.Type, def string) string {
	t.Helper()
	inside := strings.Contains(key, "[]") || isSharedKey(key)
	var code reflect.Value
	if inside {
		code = reflect.Zero(typ)
		// A list item with defaults of its own (a notify item) has them.
		if list, rest, ok := strings.Cut(key, "[]."); ok && !strings.Contains(rest, "[]") {
			if lt, ok := typeAt(list); ok && lt.Kind() == reflect.Slice {
				item := reflect.New(lt.Elem())
				if d, ok := item.Interface().(defaulter); ok {
					d.setDefaults()
					code = valueAt(item.Elem(), rest)
				}
			}
		}
	} else {
		code = valueAt(reflect.ValueOf(Default()).Elem(), key)
	}
	if def == "" {
		if !inside && typ.Kind() != reflect.Struct {
			return fmt.Sprintf("`%s` has no documented default (the code's is %s)", key, marshal(t, code))
		}
		return ""
	}
	doc := reflect.New(typ)
	if err := yaml.Unmarshal([]byte(def), doc.Interface()); err != nil {
		return fmt.Sprintf("`%s`: documented default %q does not parse as %s: %v", key, def, typ, err)
	}
	if got, want := marshal(t, doc.Elem()), marshal(t, code); got != want {
		return fmt.Sprintf("`%s`: documented default is %s, the code's is %s", key, got, want)
	}
	return ""
}

// isSharedKey reports whether key is the bare key of a shared type.
func isSharedKey(key string) bool {
	for _, st := range sharedTypes {
		if _, ok := fieldsOf(st).index[key]; ok {
			return true
		}
	}
	return false
}

func marshal(t *testing.T, v reflect.Value) string {
	t.Helper()
	out, err := yaml.Marshal(v.Interface())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// documentedKeys lists the keys that need a row: the top-level ones, every
// leaf, every list, and every use of a shared type (whose own keys are
// listed bare, once).
func documentedKeys(t reflect.Type, prefix string, top bool) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" {
			continue
		}
		key := join(prefix, name)
		ft := f.Type
		switch {
		case slices.Contains(sharedTypes, ft):
			out = append(out, key)
			for _, k := range documentedKeys(ft, "", false) {
				if !slices.Contains(out, k) {
					out = append(out, k)
				}
			}
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem() != addrType && ft.Elem() != prefixType:
			out = append(out, key)
			out = append(out, documentedKeys(ft.Elem(), key+"[]", false)...)
		case ft.Kind() == reflect.Struct && ft != durationType && ft != addrType && ft != prefixType:
			if top {
				out = append(out, key)
			}
			out = append(out, documentedKeys(ft, key, false)...)
		default:
			out = append(out, key)
		}
	}
	return out
}

// typeAt returns the type of the key at path ("hostgroups[].name"), or of a
// shared type's bare key ("pps").
func typeAt(path string) (reflect.Type, bool) {
	for _, st := range sharedTypes {
		if i, ok := fieldsOf(st).index[path]; ok {
			return st.Field(i).Type, true
		}
	}
	t := reflect.TypeFor[Config]()
	for part := range strings.SplitSeq(path, ".") {
		name, list := strings.CutSuffix(part, "[]")
		if t.Kind() != reflect.Struct {
			return nil, false
		}
		i, ok := fieldsOf(t).index[name]
		if !ok {
			return nil, false
		}
		t = t.Field(i).Type
		if list {
			if t.Kind() != reflect.Slice {
				return nil, false
			}
			t = t.Elem()
		}
	}
	return t, true
}

// valueAt returns the value at a path without lists.
func valueAt(v reflect.Value, path string) reflect.Value {
	for part := range strings.SplitSeq(path, ".") {
		v = v.Field(fieldsOf(v.Type()).index[part])
	}
	return v
}

func readDoc(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(referenceDoc)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
