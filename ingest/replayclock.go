package ingest

import "time"

// ReplayClock drives a synchronous pipeline from capture time: before the
// first datagram of each new second it flushes the batcher (so the records
// of the past second are counted) and calls Tick once for every second
// passed, so that attacks end in replay as they would live. After a silence
// longer than MaxTicks seconds it ticks MaxTicks of them and jumps.
type ReplayClock struct {
	Tick     func(time.Time)
	Batcher  *Batcher
	MaxTicks int64 // 0: tick every second, however long the silence
	sec      int64
}

// Advance moves the clock to t. It reports whether it ticked.
func (c *ReplayClock) Advance(t time.Time) bool {
	sec := t.Unix()
	if c.sec == 0 {
		c.sec = sec
		return false
	}
	if sec <= c.sec {
		return false
	}
	c.Batcher.Flush()
	for n := int64(0); c.sec < sec; n++ {
		if c.MaxTicks > 0 && n == c.MaxTicks {
			c.sec = sec - 1
		}
		c.sec++
		c.Tick(time.Unix(c.sec, 0))
	}
	return true
}
