package ingest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// corpusEntry is one file of shared/flows/counts.json: what tshark counted.
type corpusEntry struct {
	Format            string `json:"format"`
	Malformed         bool   `json:"malformed"`
	Datagrams         int    `json:"datagrams"`
	NFv5Records       int    `json:"nfv5_records"`
	V9IPFIXFlows      int    `json:"v9_ipfix_flow_records"`
	SFlowFlowSamples  int    `json:"sflow_flow_samples"`
	NoTemplateSets    int    `json:"data_sets_without_template"`
	OptionsRecords    int    `json:"v9_ipfix_option_records"`
	SFlowCounterCount int    `json:"sflow_counter_samples"`
}

func (e corpusEntry) flowRecords() int { return e.NFv5Records + e.V9IPFIXFlows + e.SFlowFlowSamples }

func loadCorpus(t *testing.T) (string, map[string]corpusEntry) { return loadCorpusTB(t) }

func loadCorpusTB(t testing.TB) (string, map[string]corpusEntry) {
	dir := testutil.FlowsDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "counts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var counts map[string]corpusEntry
	if err := json.Unmarshal(raw, &counts); err != nil {
		t.Fatalf("counts.json: %v", err)
	}
	return dir, counts
}

// replayResult is what decoding one capture gave.
type replayResult struct {
	datagrams, records, errors int
	sinkRecords                int
	firstErr                   error
}

func replayFile(t testing.TB, d *Decoder, path string) replayResult {
	var res replayResult
	b := NewBatcher(nil, flow.SinkFunc(func(b *flow.Batch) {
		res.sinkRecords += b.N
		flow.DefaultPool.Put(b)
	}))
	_, err := ReadCapture(path, func(dg Datagram) error {
		if DetectFormat(dg.Payload) == flow.FormatUnknown {
			return nil
		}
		r, err := d.Decode(dg.Payload, dg.Src.Addr(), dg.Time, b)
		res.datagrams++
		res.records += r.Records
		if err != nil {
			res.errors++
			if res.firstErr == nil {
				res.firstErr = err
			}
		}
		return nil
	})
	if err != nil && res.firstErr == nil {
		res.firstErr = err
	}
	b.Flush()
	return res
}

// TestCorpusMatchesWireshark replays every capture of the shared corpus and
// compares the flow records decoded with what tshark's dissector counted.
// Where tshark skipped data sets for want of a template we may decode more
// (we buffer them until the template arrives), never fewer. Malformed
// captures need only not crash.
func TestCorpusMatchesWireshark(t *testing.T) {
	dir, counts := loadCorpus(t)
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) < 150 {
		t.Fatalf("counts.json lists %d captures, expected the full corpus (155)", len(names))
	}
	var table, notes []string
	exact, more := 0, 0
	for _, name := range names {
		e := counts[name]
		d := New(Options{}, Deps{Logger: newDiscardLogger()})
		res := replayFile(t, d, filepath.Join(dir, name))
		want := e.flowRecords()
		if res.sinkRecords != res.records {
			t.Errorf("%s: %d records reported but %d reached the sink", name, res.records, res.sinkRecords)
		}
		if res.datagrams != e.Datagrams && !e.Malformed {
			table = append(table, fmt.Sprintf("%-70s datagrams got %d want %d", name, res.datagrams, e.Datagrams))
		}
		switch {
		case e.Malformed:
			notes = append(notes, fmt.Sprintf("%-70s malformed (tshark): %d records, first error: %v", name, res.records, res.firstErr))
		case res.records == want:
			exact++
		case res.records > want && e.NoTemplateSets > 0:
			more++
			notes = append(notes, fmt.Sprintf("%-70s %d records, tshark %d (it skipped %d data sets before their template)",
				name, res.records, want, e.NoTemplateSets))
		default:
			table = append(table, fmt.Sprintf("%-70s records got %d want %d (no-template sets %d) first error: %v",
				name, res.records, want, e.NoTemplateSets, res.firstErr))
		}
	}
	t.Logf("%d captures: %d exact, %d with more records than tshark (buffered data before template)\n%s",
		len(names), exact, more, strings.Join(notes, "\n"))
	if len(table) > 0 {
		t.Errorf("mismatches against tshark:\n%s", strings.Join(table, "\n"))
	}
}
