package events

import (
	"context"
	"sync"
	"testing"
)

// BenchmarkPublish measures a publish with no reader waiting, with one
// reader blocked in Next (each publish wakes it), and from several
// goroutines at once.
func BenchmarkPublish(b *testing.B) {
	e := Event{Kind: AttackUpdated, Attack: synFlood()}
	b.Run("idle", func(b *testing.B) {
		r := NewRing(4096, nil)
		r.NewReader("idle", 1)
		b.ReportAllocs()
		for b.Loop() {
			r.Publish(e)
		}
	})
	b.Run("reader", func(b *testing.B) {
		r := NewRing(4096, nil)
		rd := r.NewReader("follow", 1)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				if _, err := rd.Next(ctx); err != nil {
					return
				}
			}
		})
		b.ReportAllocs()
		for b.Loop() {
			r.Publish(e)
		}
		b.StopTimer()
		cancel()
		wg.Wait()
		b.ReportMetric(float64(rd.Lost()), "lost")
	})
	b.Run("parallel", func(b *testing.B) {
		r := NewRing(4096, nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r.Publish(e)
			}
		})
	})
}
