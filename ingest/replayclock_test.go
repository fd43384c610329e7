package ingest

import (
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

func TestReplayClock(t *testing.T) {
	var ticks []int64
	flushed := 0
	b := NewBatcher(nil, flow.SinkFunc(func(bt *flow.Batch) { flushed++; flow.DefaultPool.Put(bt) }))
	c := ReplayClock{Tick: func(t time.Time) { ticks = append(ticks, t.Unix()) }, Batcher: b, MaxTicks: 3}
	base := time.Unix(1000, 0)
	if c.Advance(base) || c.Advance(base.Add(500*time.Millisecond)) {
		t.Fatal("ticked within the first second")
	}
	b.Add(&flow.Record{})
	if !c.Advance(base.Add(2*time.Second)) || flushed != 1 {
		t.Fatalf("no flush before the tick (flushed %d)", flushed)
	}
	c.Advance(base.Add(100 * time.Second)) // a long silence: 3 ticks, then a jump
	want := []int64{1001, 1002, 1003, 1004, 1005, 1100}
	if len(ticks) != len(want) {
		t.Fatalf("ticks %v, want %v", ticks, want)
	}
	for i := range want {
		if ticks[i] != want[i] {
			t.Fatalf("ticks %v, want %v", ticks, want)
		}
	}
}
