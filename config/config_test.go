package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the expected files of the golden tests")

// yamlV3Differs lists the valid cases where a plain strict yaml.v3 decode is
// expected to disagree with Parse, and why.
var yamlV3Differs = map[string]string{
	"null_sections": "yaml.v3 zeroes a section set to null; Parse keeps its defaults",
}

// TestValid parses every testdata/valid/<case>/in.yaml and compares the
// effective configuration with expected.yaml.
func TestValid(t *testing.T) {
	dirs, err := filepath.Glob("testdata/valid/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no valid cases found (err %v)", err)
	}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(dir, "in.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse("in.yaml", in)
			if err != nil {
				t.Fatalf("Parse: unexpected errors:\n%v", err)
			}
			got, err := c.Dump()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "expected.yaml"), got)

			// The dump is itself a valid configuration, and the same one.
			c2, err := Parse("expected.yaml", got)
			if err != nil {
				t.Fatalf("Parse(Dump()): unexpected errors:\n%v", err)
			}
			again, err := c2.Dump()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, got) {
				t.Errorf("Dump of the parsed dump differs (-got +want):\n%s", diff(string(again), string(got)))
			}

			// A strict yaml.v3 decode onto the defaults agrees with Parse.
			if reason, ok := yamlV3Differs[name]; ok {
				t.Logf("not compared with yaml.v3: %s", reason)
				return
			}
			ref := Default()
			dec := yaml.NewDecoder(bytes.NewReader(in))
			dec.KnownFields(true)
			if err := dec.Decode(ref); err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("yaml.v3 decode: %v", err)
			}
			refDump, err := ref.Dump()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, refDump) {
				t.Errorf("Parse and yaml.v3 disagree (-Parse +yaml.v3):\n%s", diff(string(got), string(refDump)))
			}
		})
	}
}

// positioned matches an error line that starts with FILE:LINE:COL.
var positioned = regexp.MustCompile(`^[^:]+\.yaml:[1-9][0-9]*:[1-9][0-9]*: `)

// TestInvalid parses every testdata/invalid/<case>.yaml and compares the
// errors with <case>.err.
func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid cases found (err %v)", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(filepath.Base(file), in)
			if err == nil {
				t.Fatal("Parse: no error")
			}
			if c != nil {
				t.Error("Parse returned a Config along with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Parse error %T is not Errors: %v", err, err)
			}
			for _, e := range errs {
				// Only YAML syntax errors, which yaml.v3 gives with a
				// line alone, may lack a column.
				if !positioned.MatchString(e.Error()) && !strings.HasPrefix(e.Msg, "invalid YAML: ") {
					t.Errorf("error without file:line:col: %v", e)
				}
			}
			golden(t, strings.TrimSuffix(file, ".yaml")+".err", []byte(err.Error()+"\n"))
		})
	}
	// Every expected-error file has its input.
	errFiles, _ := filepath.Glob("testdata/invalid/*.err")
	for _, f := range errFiles {
		if _, err := os.Stat(strings.TrimSuffix(f, ".err") + ".yaml"); err != nil {
			t.Errorf("%s has no input file: %v", f, err)
		}
	}
}

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (-got +want):\n%s", path, diff(string(got), string(want)))
	}
}

// diff is a line diff of got and want (longest common subsequence), enough
// for golden files of a few hundred lines.
func diff(got, want string) string {
	a, b := strings.Split(got, "\n"), strings.Split(want, "\n")
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			out.WriteString("  " + a[i] + "\n")
			i, j = i+1, j+1
		case j == len(b) || (i < len(a) && lcs[i+1][j] >= lcs[i][j+1]):
			out.WriteString("- " + a[i] + "\n")
			i++
		default:
			out.WriteString("+ " + b[j] + "\n")
			j++
		}
	}
	return out.String()
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate():\n%v", err)
	}
	c, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.DryRun {
		t.Error("an empty file turns dry-run off")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		file     string // created in dir unless empty
		content  string
		wantErr  string // substring; empty for success
		notExist bool
	}{
		{name: "valid", file: "kapkan.yaml", content: "dry_run: false\n"},
		{name: "missing", wantErr: "no-such-kapkan.yaml", notExist: true},
		{name: "positions name the path", file: "bad.yaml", content: "log: {level: loud}\n",
			wantErr: "bad.yaml:1:14: log.level: \"loud\" is not a log level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "no-such-kapkan.yaml")
			if tt.file != "" {
				path = filepath.Join(dir, tt.file)
				if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c, err := Load(path)
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tt.wantErr)
			}
			if tt.notExist {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name %s", err, path)
				}
			}
		})
	}
}

// TestValidateInCode checks a Config built in code: problems carry the key
// path and no position.
func TestValidateInCode(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{
			name: "host bits",
			change: func(c *Config) {
				c.Hostgroups = []Hostgroup{{Name: "lan", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}}}
			},
			want: "hostgroups[0].prefixes[0]: 10.1.2.3/8 has host bits set (want 10.0.0.0/8)",
		},
		{
			name:   "zero prefix",
			change: func(c *Config) { c.Hostgroups = []Hostgroup{{Name: "lan", Prefixes: make([]netip.Prefix, 1)}} },
			want:   "hostgroups[0].prefixes[0]: no prefix (want CIDR like 203.0.113.0/24)",
		},
		{
			name:   "window",
			change: func(c *Config) { c.Detection.Window.Duration = 0 },
			want:   "detection.window: 0s is out of range (want 1s to 300s)",
		},
		{
			name:   "exporter without address",
			change: func(c *Config) { c.Ingest.Exporters = []Exporter{{SamplingRate: 10}} },
			want:   "ingest.exporters[0].address: no address (want the exporter's address, like 192.0.2.1)",
		},
		{
			name: "exporter zone",
			change: func(c *Config) {
				c.Ingest.Exporters = []Exporter{{Address: netip.MustParseAddr("fe80::1%eth0"), SamplingRate: 10}}
			},
			want: `ingest.exporters[0].address: "fe80::1%eth0" has a zone (want the address without %eth0)`,
		},
		{
			name: "duplicate exporter without positions",
			change: func(c *Config) {
				a := netip.MustParseAddr("192.0.2.1")
				c.Ingest.Exporters = []Exporter{{Address: a, Name: "x"}, {Address: a, Name: "y"}}
			},
			want: "ingest.exporters[1].address: 192.0.2.1 is already configured by ingest.exporters[0]",
		},
		{
			name:   "empty api listen",
			change: func(c *Config) { c.API.Listen = "" },
			want:   `api.listen: no address (want host:port, like "127.0.0.1:8080")`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate: no error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Validate:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want string
	}{
		{"full", Error{File: "k.yaml", Line: 12, Col: 9, Path: "a.b", Msg: "bad"}, "k.yaml:12:9: a.b: bad"},
		{"no column", Error{File: "k.yaml", Line: 3, Msg: "invalid YAML: oops"}, "k.yaml:3: invalid YAML: oops"},
		{"no position", Error{File: "k.yaml", Path: "a", Msg: "bad"}, "k.yaml: a: bad"},
		{"in code", Error{Path: "a", Msg: "bad"}, "a: bad"},
		{"no path", Error{File: "k.yaml", Line: 1, Col: 1, Msg: "bad"}, "k.yaml:1:1: bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorsUnwrap(t *testing.T) {
	_, err := Parse("k.yaml", []byte("log: {level: loud, format: xml}\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("errors.As(Errors) on %v: got %d errors, want 2", err, len(errs))
	}
	var one *Error
	if !errors.As(err, &one) || one.Path != "log.level" || one.Line != 1 || one.Col != 14 {
		t.Errorf("errors.As(*Error) = %+v, want the first problem, log.level at 1:14", one)
	}
}

func TestListenOverlap(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"same", ":2055", ":2055", true},
		{"all and any v4", ":2055", "0.0.0.0:2055", true},
		{"all v6 and v4 address", "[::]:2055", "192.0.2.1:2055", true},
		{"any v4 and v4 address", "0.0.0.0:2055", "192.0.2.1:2055", true},
		{"any v4 and host name", "0.0.0.0:2055", "collector:2055", true},
		{"any v4 and v6 address", "0.0.0.0:2055", "[2001:db8::1]:2055", false},
		{"same address", "192.0.2.1:2055", "192.0.2.1:2055", true},
		{"mapped address", "[::ffff:192.0.2.1]:2055", "192.0.2.1:2055", true},
		{"other address", "192.0.2.1:2055", "192.0.2.2:2055", false},
		{"other port", ":2055", ":6343", false},
		{"port zero", ":0", ":0", false},
		{"same host name", "Collector:2055", "collector:2055", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listenOverlap(tt.a, tt.b); got != tt.want {
				t.Errorf("listenOverlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
			if got := listenOverlap(tt.b, tt.a); got != tt.want {
				t.Errorf("listenOverlap(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr string
	}{
		{name: "seconds", in: "5s", want: 5 * time.Second},
		{name: "compound", in: "1m30s", want: 90 * time.Second},
		{name: "days", in: "90d", want: 90 * 24 * time.Hour},
		{name: "days and hours", in: "1d12h", want: 36 * time.Hour},
		{name: "negative days", in: "-2d", want: -48 * time.Hour},
		{name: "no unit", in: "5", wantErr: `5 is not a duration (want a number with a unit, like "5s", "1m30s" or "90d")`},
		{name: "fractional days", in: "1.5d", wantErr: `"1.5d" is not a duration (want a number with a unit, like "5s", "1m30s" or "90d")`},
		{name: "days without number", in: "d", wantErr: `"d" is not a duration (want a number with a unit, like "5s", "1m30s" or "90d")`},
		{name: "days then sign", in: "1d-1h", wantErr: `"1d-1h" is not a duration (want a number with a unit, like "5s", "1m30s" or "90d")`},
		{name: "days overflow", in: "200000d", wantErr: `"200000d" is not a duration (want a number with a unit, like "5s", "1m30s" or "90d")`},
		{name: "list", in: "[5s]", wantErr: `a list is not a duration (want a string like "5s")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			err := yaml.Unmarshal([]byte(tt.in), &d)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || d.Duration != tt.want {
				t.Fatalf("got %v, %v; want %v", d.Duration, err, tt.want)
			}
			out, err := yaml.Marshal(d)
			if err != nil || string(out) != tt.want.String()+"\n" {
				t.Errorf("Marshal = %q, %v; want %q", out, err, tt.want.String())
			}
		})
	}
}

// TestAliasBomb checks that aliases cannot make Parse expand a small file
// into millions of nodes: here 1024 hostgroups of 2048 prefixes from 12 KB.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("hostgroups:\n  - &h {name: x, prefixes: [&a 203.0.113.0/24")
	b.WriteString(strings.Repeat(", *a", 2047))
	b.WriteString("]}\n")
	b.WriteString(strings.Repeat("  - *h\n", 1023))
	_, err := Parse("bomb.yaml", []byte(b.String()))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || !strings.Contains(errs[0].Msg, "too many nodes") {
		t.Fatalf("Parse = %.500v, want one too many nodes error", err)
	}
}

// FuzzParse checks that no input makes Parse panic, that every error is
// located (the file, and a line or a key path) and says something, and
// that every configuration it accepts dumps to YAML that parses back to
// the same dump.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	more, _ := filepath.Glob("testdata/valid/*/in.yaml")
	for _, s := range append(seeds, more...) {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T is not config Errors: %v", err, err)
			}
			for _, e := range errs {
				if e.File != "fuzz.yaml" || e.Msg == "" || (e.Line <= 0 && e.Path == "") {
					t.Fatalf("error without its place or message: %+v", e)
				}
			}
			return
		}
		out, err := c.Dump()
		if err != nil {
			t.Fatalf("Dump: %v", err)
		}
		c2, err := Parse("dump.yaml", out)
		if err != nil {
			t.Fatalf("Parse(Dump()) failed:\n%v\ndump:\n%s", err, out)
		}
		out2, err := c2.Dump()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("dump changed after a round trip (-first +second):\n%s", diff(string(out), string(out2)))
		}
	})
}
