// Command vulnfilter reads govulncheck's JSON output on stdin and fails
// when the code calls a vulnerable function whose OSV id is not accepted
// in the file named by its argument (one id per line, then the reason;
// # starts a comment). It prints each finding, accepted or not, so the
// log says what was found.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type message struct {
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Package  string `json:"package"`
			Function string `json:"function"`
		} `json:"trace"`
	} `json:"finding"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: govulncheck -format json ./... | vulnfilter ACCEPTED_FILE")
		os.Exit(2)
	}
	accepted, err := readAccepted(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulnfilter:", err)
		os.Exit(2)
	}
	summaries := map[string]string{}
	called := map[string]string{} // id → where
	dec := json.NewDecoder(bufio.NewReader(os.Stdin))
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "vulnfilter: read govulncheck's output:", err)
			os.Exit(2)
		}
		if m.OSV != nil {
			summaries[m.OSV.ID] = m.OSV.Summary
		}
		if f := m.Finding; f != nil && len(f.Trace) > 0 && f.Trace[0].Function != "" {
			t := f.Trace[0]
			called[f.OSV] = fmt.Sprintf("%s@%s %s.%s (fixed in %s)", t.Module, t.Version, t.Package, t.Function, orNone(f.FixedVersion))
		}
	}
	ids := make([]string, 0, len(called))
	for id := range called {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	bad := 0
	for _, id := range ids {
		if why, ok := accepted[id]; ok {
			fmt.Printf("accepted %s: %s\n  %s\n  why: %s\n", id, summaries[id], called[id], why)
			continue
		}
		bad++
		fmt.Printf("VULNERABLE %s: %s\n  %s\n", id, summaries[id], called[id])
	}
	for id := range accepted {
		if _, ok := called[id]; !ok {
			fmt.Printf("note: %s is accepted in %s but no longer found: remove it\n", id, os.Args[1])
		}
	}
	if bad > 0 {
		fmt.Printf("%d vulnerabilities the code calls, not accepted\n", bad)
		os.Exit(1)
	}
	fmt.Printf("no vulnerability called but the %d accepted\n", len(ids))
}

func orNone(s string) string {
	if s == "" {
		return "no release yet"
	}
	return s
}

// readAccepted reads "ID reason..." lines.
func readAccepted(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		id, why, _ := strings.Cut(l, " ")
		if !strings.HasPrefix(id, "GO-") || strings.TrimSpace(why) == "" {
			return nil, fmt.Errorf("%s:%d: want an OSV id (GO-YYYY-NNNN) and the reason it is accepted", path, i+1)
		}
		out[id] = strings.TrimSpace(why)
	}
	return out, nil
}
