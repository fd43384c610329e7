package ingest

import (
	"net/netip"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

// corpusDatagram is one flow datagram from the shared corpus.
type corpusDatagram struct {
	src     netip.Addr
	time    time.Time
	payload []byte
}

// corpusDatagrams returns every flow datagram of the given format from the
// well-formed captures of the shared corpus, in file order.
func corpusDatagrams(t testing.TB, format flow.Format) []corpusDatagram {
	t.Helper()
	dir, counts := loadCorpusTB(t)
	names := make([]string, 0, len(counts))
	for n, e := range counts {
		if !e.Malformed {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []corpusDatagram
	for _, n := range names {
		_, err := ReadCapture(filepath.Join(dir, n), func(d Datagram) error {
			if DetectFormat(d.Payload) == format {
				out = append(out, corpusDatagram{src: d.Src.Addr(), time: d.Time, payload: append([]byte(nil), d.Payload...)})
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s datagram in the corpus", format)
	}
	return out
}

// discardSink recycles batches and counts records.
type discardSink struct{ n int }

func (s *discardSink) Consume(b *flow.Batch) {
	s.n += b.N
	flow.DefaultPool.Put(b)
}
