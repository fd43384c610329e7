package main

// Charts of a run, drawn as SVG by this file (no plotting tool): for each
// format and host count, the records accounted against the records
// offered, one line per system with the ideal diagonal; and the
// distribution of detection latencies of every system and format, as
// cumulative curves on a logarithmic time axis. They are drawn from the
// steps of the results file, so that `-from bench-e2e.json` redraws them
// without running the load, and a test checks the drawing.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH                     = 740, 400
	plotLeft, plotRight                = 80, 240 // room for the y labels, and the legend on the right
	plotTop, plotBottom                = 40, 56
	plotW, plotH                       = chartW - plotLeft - plotRight, chartH - plotTop - plotBottom
	fontStyle                          = `font-family="sans-serif" font-size="12"`
	colourKapkan, colourFNM, colourIdl = "#1f77b4", "#d62728", "#888888"
)

// systemColour is the colour of a system's lines in every chart.
func systemColour(system string) string {
	if system == "kapkan" {
		return colourKapkan
	}
	return colourFNM
}

// systemName is how the legend names a system.
func systemName(system string) string {
	switch system {
	case "kapkan":
		return "Kapkan"
	case "fastnetmon":
		return "FastNetMon"
	}
	return system
}

// formatName is how titles name a format.
func formatName(format string) string {
	switch format {
	case "sflow5":
		return "sFlow v5"
	case "netflow9":
		return "NetFlow v9"
	case "netflow5":
		return "NetFlow v5"
	case "ipfix":
		return "IPFIX"
	}
	return format
}

// svg builds one chart.
type svg struct{ b bytes.Buffer }

func newSVG(title string) *svg {
	s := &svg{}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s>`+"\n",
		chartW, chartH, chartW, chartH, fontStyle)
	fmt.Fprintf(&s.b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	s.text(chartW/2, 22, "middle", `font-size="14" font-weight="bold"`, title)
	return s
}

func (s *svg) text(x, y float64, anchor, attrs, text string) {
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`+"\n", x, y, anchor, attrs, html.EscapeString(text))
}

func (s *svg) line(x1, y1, x2, y2 float64, attrs string) {
	fmt.Fprintf(&s.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>`+"\n", x1, y1, x2, y2, attrs)
}

// series draws a polyline through pts (SVG coordinates) with a marker on
// each point when marks is set.
func (s *svg) series(class string, pts [][2]float64, colour, dash string, marks bool) {
	var p []string
	for _, pt := range pts {
		p = append(p, fmt.Sprintf("%.1f,%.1f", pt[0], pt[1]))
	}
	d := ""
	if dash != "" {
		d = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(&s.b, `<polyline class="%s" points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n",
		class, strings.Join(p, " "), colour, d)
	if marks {
		for _, pt := range pts {
			fmt.Fprintf(&s.b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", pt[0], pt[1], colour)
		}
	}
}

// legend writes the entries top-down on the right of the plot.
func (s *svg) legend(entries []legendEntry) {
	x := float64(chartW - plotRight + 16)
	for i, e := range entries {
		y := float64(plotTop + 10 + 20*i)
		d := ""
		if e.dash != "" {
			d = fmt.Sprintf(` stroke-dasharray="%s"`, e.dash)
		}
		s.line(x, y, x+24, y, fmt.Sprintf(`stroke="%s" stroke-width="2"%s`, e.colour, d))
		s.text(x+30, y+4, "start", "", e.label)
	}
}

type legendEntry struct{ label, colour, dash string }

func (s *svg) bytes() []byte {
	s.b.WriteString("</svg>\n")
	return s.b.Bytes()
}

// axes draws the frame, the grid and the tick labels of both axes.
func (s *svg) axes(xticks, yticks []tick, xlabel, ylabel string) {
	x0, y0 := float64(plotLeft), float64(plotTop+plotH)
	for _, t := range xticks {
		s.line(t.at, float64(plotTop), t.at, y0, `stroke="#e0e0e0"`)
		s.text(t.at, y0+16, "middle", "", t.label)
	}
	for _, t := range yticks {
		s.line(x0, t.at, float64(plotLeft+plotW), t.at, `stroke="#e0e0e0"`)
		s.text(x0-6, t.at+4, "end", "", t.label)
	}
	s.line(x0, float64(plotTop), x0, y0, `stroke="black"`)
	s.line(x0, y0, float64(plotLeft+plotW), y0, `stroke="black"`)
	s.text(float64(plotLeft+plotW/2), float64(chartH-12), "middle", "", xlabel)
	fmt.Fprintf(&s.b, `<text x="18" y="%d" text-anchor="middle" transform="rotate(-90 18 %d)">%s</text>`+"\n",
		plotTop+plotH/2, plotTop+plotH/2, html.EscapeString(ylabel))
}

type tick struct {
	at    float64
	label string
}

// niceStep is a round step (1, 2 or 5 times a power of ten) that cuts
// span into at most n intervals.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// rateLabel writes a rate in records/s as 500k or 1.5M.
func rateLabel(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1e6:
		return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.2f", v/1e6), "0"), ".0") + "M"
	default:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
}

// throughputChart draws records accounted against records offered for one
// format and host count, each system's steps joined in rate order.
func throughputChart(steps []step, format string, hosts int) []byte {
	bySystem := map[string][]step{}
	top := 0.0
	for _, s := range steps {
		if s.Format != format || s.Hosts != hosts {
			continue
		}
		bySystem[s.System] = append(bySystem[s.System], s)
		top = max(top, s.OfferedRPS)
	}
	st := niceStep(top, 6)
	top = math.Ceil(top/st) * st
	sx := func(v float64) float64 { return plotLeft + v/top*plotW }
	sy := func(v float64) float64 { return plotTop + plotH - v/top*plotH }
	c := newSVG(fmt.Sprintf("%s, %s destinations: records accounted / offered", formatName(format), groupDigits(hosts)))
	var ticks []tick
	for v := 0.0; v <= top+st/2; v += st {
		ticks = append(ticks, tick{sx(v), rateLabel(v)})
	}
	yt := make([]tick, len(ticks))
	for i, t := range ticks {
		yt[i] = tick{sy(float64(i) * st), t.label}
	}
	c.axes(ticks, yt, "offered (records/s)", "accounted (records/s)")
	c.series("ideal", [][2]float64{{sx(0), sy(0)}, {sx(top), sy(top)}}, colourIdl, "4 4", false)
	legend := []legendEntry{}
	for _, sys := range sortedSystems(bySystem) {
		ss := bySystem[sys]
		sort.Slice(ss, func(i, j int) bool { return ss[i].OfferedRPS < ss[j].OfferedRPS })
		var pts [][2]float64
		for _, s := range ss {
			pts = append(pts, [2]float64{sx(s.OfferedRPS), sy(accountedRate(s))})
		}
		c.series("system-"+sys, pts, systemColour(sys), "", true)
		legend = append(legend, legendEntry{systemName(sys), systemColour(sys), ""})
	}
	legend = append(legend, legendEntry{"no loss", colourIdl, "4 4"})
	c.legend(legend)
	return c.bytes()
}

// accountedRate is the rate of the records a step's collector counted:
// the offered rate less the step's loss.
func accountedRate(s step) float64 {
	return s.OfferedRPS * (100 - s.LossPercent) / 100
}

// latencyChart draws, for each system and format, the share of the
// injected attacks detected within a given time (a cumulative
// distribution), on a logarithmic time axis. Missed attacks count in the
// share and are never detected: a curve that missed some stops short of
// 100 %.
func latencyChart(steps []step) []byte {
	type key struct{ system, format string }
	lat := map[key][]float64{}
	missed := map[key]int{}
	lo, hi := math.Inf(1), 0.0
	for _, s := range steps {
		k := key{s.System, s.Format}
		missed[k] += s.Missed
		for _, v := range s.LatenciesMS {
			if v <= 0 {
				continue
			}
			lat[k] = append(lat[k], v)
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	c := newSVG("detection latency: share of the attacks detected within a time")
	if len(lat) == 0 {
		c.text(chartW/2, chartH/2, "middle", "", "no detection latency in the results")
		return c.bytes()
	}
	// Decades that hold every sample.
	dlo, dhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dhi == dlo {
		dhi++
	}
	sx := func(ms float64) float64 { return plotLeft + (math.Log10(ms)-dlo)/(dhi-dlo)*plotW }
	sy := func(frac float64) float64 { return plotTop + plotH - frac*plotH }
	var xt []tick
	for d := dlo; d <= dhi; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if d == dhi && m > 1 {
				break
			}
			xt = append(xt, tick{sx(v), msLabel(v)})
		}
	}
	var yt []tick
	for p := 0; p <= 100; p += 25 {
		yt = append(yt, tick{sy(float64(p) / 100), fmt.Sprintf("%d %%", p)})
	}
	c.axes(xt, yt, "ms from the attack's first record sent to its detection (log scale)", "attacks detected")
	var keys []key
	for k := range lat {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].system != keys[j].system {
			return keys[i].system > keys[j].system // kapkan first
		}
		return keys[i].format < keys[j].format
	})
	formats := []string{}
	for _, k := range keys {
		if !slices.Contains(formats, k.format) {
			formats = append(formats, k.format)
		}
	}
	sort.Strings(formats)
	dashes := []string{"", "6 3", "2 3", "8 3 2 3"}
	var legend []legendEntry
	for _, k := range keys {
		v := slices.Clone(lat[k])
		sort.Float64s(v)
		all := float64(len(v) + missed[k])
		// A step function: the share rises by 1/all at each sample.
		pts := [][2]float64{{sx(v[0]), sy(0)}}
		for i, ms := range v {
			pts = append(pts, [2]float64{sx(ms), sy(float64(i) / all)}, [2]float64{sx(ms), sy(float64(i+1) / all)})
		}
		dash := dashes[slices.Index(formats, k.format)%len(dashes)]
		c.series("latency-"+k.system+"-"+k.format, pts, systemColour(k.system), dash, false)
		count := fmt.Sprint(len(v))
		if missed[k] > 0 {
			count = fmt.Sprintf("%d of %d", len(v), len(v)+missed[k])
		}
		legend = append(legend, legendEntry{fmt.Sprintf("%s %s (%s)", systemName(k.system), formatName(k.format), count), systemColour(k.system), dash})
	}
	c.legend(legend)
	return c.bytes()
}

func msLabel(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%gs", ms/1000)
	}
	return fmt.Sprintf("%g", ms)
}

func groupDigits(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// sortedSystems lists Kapkan first, then the others by name.
func sortedSystems[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] > out[j] })
	return out
}

// charts returns every chart of a run by file name: throughput-FORMAT-HOSTS.svg
// for each format and host count measured, and latency.svg.
func charts(steps []step) map[string][]byte {
	out := map[string][]byte{}
	type fh struct {
		format string
		hosts  int
	}
	seen := map[fh]bool{}
	for _, s := range steps {
		k := fh{s.Format, s.Hosts}
		if !seen[k] {
			seen[k] = true
			out[fmt.Sprintf("throughput-%s-%d.svg", s.Format, s.Hosts)] = throughputChart(steps, s.Format, s.Hosts)
		}
	}
	out["latency.svg"] = latencyChart(steps)
	return out
}

// writeCharts draws the charts of steps into dir.
func writeCharts(dir string, steps []step) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("charts: %w", err)
	}
	var names []string
	for name, b := range charts(steps) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, fmt.Errorf("charts: %w", err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// readSteps reads a results file written by a run (-out).
func readSteps(path string) ([]step, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	var steps []step
	if err := json.Unmarshal(b, &steps); err != nil {
		return nil, fmt.Errorf("read results %s: %w", path, err)
	}
	return steps, nil
}
