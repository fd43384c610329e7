package ingest

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

// fuzzDecode feeds one input twice through a fresh decoder (so that
// templates in the input apply to its data the second time), and checks
// that nothing panicked and every reported record reached the sink.
func fuzzDecode(t *testing.T, data []byte) {
	d := New(Options{}, Deps{Logger: newDiscardLogger()})
	sink := &discardSink{}
	b := NewBatcher(nil, sink)
	src := netip.MustParseAddr("192.0.2.1")
	total := 0
	for range 2 {
		res, err := d.Decode(data, src, time.Unix(1700000000, 0), b)
		if errors.Is(err, errDecoderPanic) {
			t.Fatalf("decoder panicked: %v", err)
		}
		total += res.Records
	}
	b.Flush()
	if sink.n != total {
		t.Fatalf("%d records reported, %d reached the sink", total, sink.n)
	}
}

func fuzzSeeds(f *testing.F, format flow.Format) {
	for _, dg := range corpusDatagrams(f, format) {
		f.Add(dg.payload)
	}
}

func FuzzDecodeSFlow(f *testing.F) {
	fuzzSeeds(f, flow.FormatSFlow5)
	f.Fuzz(fuzzDecode)
}

func FuzzDecodeNetFlow5(f *testing.F) {
	fuzzSeeds(f, flow.FormatNetFlow5)
	f.Fuzz(fuzzDecode)
}

func FuzzDecodeNetFlow9(f *testing.F) {
	fuzzSeeds(f, flow.FormatNetFlow9)
	f.Fuzz(fuzzDecode)
}

func FuzzDecodeIPFIX(f *testing.F) {
	fuzzSeeds(f, flow.FormatIPFIX)
	f.Fuzz(fuzzDecode)
}
