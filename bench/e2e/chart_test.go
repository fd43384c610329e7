package main

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden charts in testdata/charts")

// polylines returns the points of every polyline of an SVG by class, and
// fails the test when the document is not well-formed XML.
func polylines(t *testing.T, doc []byte) map[string][][2]float64 {
	t.Helper()
	out := map[string][][2]float64{}
	dec := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v", err)
		}
		el, ok := tok.(xml.StartElement)
		if !ok || el.Name.Local != "polyline" {
			continue
		}
		var class, points string
		for _, a := range el.Attr {
			switch a.Name.Local {
			case "class":
				class = a.Value
			case "points":
				points = a.Value
			}
		}
		var pts [][2]float64
		for _, p := range strings.Fields(points) {
			xs, ys, _ := strings.Cut(p, ",")
			x, err1 := strconv.ParseFloat(xs, 64)
			y, err2 := strconv.ParseFloat(ys, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("polyline %s: point %q", class, p)
			}
			pts = append(pts, [2]float64{x, y})
		}
		out[class] = pts
	}
}

// TestCharts draws the charts of a results file without running any load:
// the files are the expected ones, well-formed SVG, equal to the reviewed
// golden files, and their lines go through the numbers (read back from the
// drawing, each point is its step's offered and accounted rate; each
// latency curve reaches the share of the attacks detected, 100 % unless
// some were missed, and crosses 50 % at the median).
func TestCharts(t *testing.T) {
	steps, err := readSteps(filepath.Join("testdata", "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := charts(steps)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := []string{"latency.svg", "throughput-netflow9-10000.svg", "throughput-sflow5-10000.svg"}; !slices.Equal(names, want) {
		t.Fatalf("charts %v, want %v", names, want)
	}
	for name, doc := range got {
		golden := filepath.Join("testdata", "charts", name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, doc, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(doc, want) {
			t.Errorf("%s differs from %s (go test -run TestCharts -update after a reviewed change)", name, golden)
		}
	}

	for _, format := range []string{"sflow5", "netflow9"} {
		doc := got["throughput-"+format+"-10000.svg"]
		lines := polylines(t, doc)
		top := 0.0
		for _, s := range steps {
			if s.Format == format {
				top = max(top, s.OfferedRPS)
			}
		}
		st := niceStep(top, 6)
		top = math.Ceil(top/st) * st
		for _, system := range []string{"kapkan", "fastnetmon"} {
			var want []step
			for _, s := range steps {
				if s.Format == format && s.System == system {
					want = append(want, s)
				}
			}
			sort.Slice(want, func(i, j int) bool { return want[i].OfferedRPS < want[j].OfferedRPS })
			pts := lines["system-"+system]
			if len(pts) != len(want) {
				t.Fatalf("%s %s: %d points, want %d", format, system, len(pts), len(want))
			}
			for i, p := range pts {
				offered := (p[0] - plotLeft) / plotW * top
				accounted := (plotTop + plotH - p[1]) / plotH * top
				if math.Abs(offered-want[i].OfferedRPS) > top/500 || math.Abs(accounted-accountedRate(want[i])) > top/500 {
					t.Errorf("%s %s point %d reads %.0f offered, %.0f accounted; want %.0f, %.0f",
						format, system, i, offered, accounted, want[i].OfferedRPS, accountedRate(want[i]))
				}
			}
		}
		if _, ok := lines["ideal"]; !ok {
			t.Errorf("%s: no no-loss diagonal", format)
		}
		if !bytes.Contains(doc, []byte("FastNetMon")) || !bytes.Contains(doc, []byte("Kapkan")) {
			t.Errorf("%s: a system is missing from the legend", format)
		}
	}

	lines := polylines(t, got["latency.svg"])
	for _, k := range []struct{ system, format string }{{"kapkan", "sflow5"}, {"kapkan", "netflow9"}, {"fastnetmon", "sflow5"}, {"fastnetmon", "netflow9"}} {
		var lat []float64
		missed := 0
		for _, s := range steps {
			if s.System == k.system && s.Format == k.format {
				lat = append(lat, s.LatenciesMS...)
				missed += s.Missed
			}
		}
		sort.Float64s(lat)
		pts := lines["latency-"+k.system+"-"+k.format]
		if len(pts) != 1+2*len(lat) {
			t.Fatalf("%v: %d points for %d latencies", k, len(pts), len(lat))
		}
		share := float64(len(lat)) / float64(len(lat)+missed)
		if end, want := pts[len(pts)-1][1], plotTop+plotH*(1-share); math.Abs(end-want) > 0.1 {
			t.Errorf("%v: the curve ends at y=%.1f, want %.1f (%d detected, %d missed)", k, end, want, len(lat), missed)
		}
		// The median attack is where the curve climbs past 50 %.
		half := float64(plotTop + plotH/2)
		if missed > 0 {
			continue
		}
		for i := 1; i < len(pts); i++ {
			if pts[i][1] <= half && pts[i-1][1] > half {
				if med := lat[(len(lat)-1)/2]; math.Abs(pts[i][0]-pts[i-1][0]) > 0.1 || math.Abs(pts[i][0]-latencyX(med, steps)) > 0.2 {
					t.Errorf("%v: the curve crosses 50 %% at x=%.1f, want the median %.0f ms", k, pts[i][0], med)
				}
				break
			}
		}
	}
}

// latencyX is where latencyChart puts ms on its axis, recomputed from the
// range of every latency of the run.
func latencyX(ms float64, steps []step) float64 {
	lo, hi := math.Inf(1), 0.0
	for _, s := range steps {
		for _, v := range s.LatenciesMS {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	dlo, dhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	return plotLeft + (math.Log10(ms)-dlo)/(dhi-dlo)*plotW
}

// TestChartsEmbedded: docs/performance.md shows every chart of the
// committed run, and each file it shows exists.
func TestChartsEmbedded(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "performance.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "performance", "*.svg"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no chart in docs/performance: %v", err)
	}
	for _, f := range files {
		if ref := "](performance/" + filepath.Base(f) + ")"; !bytes.Contains(doc, []byte(ref)) {
			t.Errorf("docs/performance.md does not show %s", f)
		}
	}
	for _, line := range strings.Split(string(doc), "\n") {
		_, ref, ok := strings.Cut(line, "](performance/")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(ref, ")")
		if _, err := os.Stat(filepath.Join("..", "..", "docs", "performance", name)); err != nil {
			t.Errorf("docs/performance.md shows a missing chart: %v", err)
		}
	}
}
