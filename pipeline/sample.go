package pipeline

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/rules"
)

// topSources is how many sources a sample summary names.
const topSources = 5

// sampleSummary is what the API and notifications show of the flow sample
// an attack's verdict stood on: the features' ports and sizes, and the
// sources sending most (sampling-corrected packets).
func sampleSummary(c *engine.Candidate, f *rules.Features) *events.SampleSummary {
	if len(c.Sample) == 0 {
		return nil
	}
	s := &events.SampleSummary{Sources: f.Sources, MeanPacketSize: f.MeanPacketSize,
		P10PacketSize: f.P10PacketSize, P50PacketSize: f.P50PacketSize, P90PacketSize: f.P90PacketSize}
	for _, p := range f.TopSrcPorts {
		s.TopSrcPorts = append(s.TopSrcPorts, events.Share{Value: strconv.Itoa(p.Port), Share: p.Share})
	}
	for _, p := range f.TopDstPorts {
		s.TopDstPorts = append(s.TopDstPorts, events.Share{Value: strconv.Itoa(p.Port), Share: p.Share})
	}
	bySource := map[netip.Addr]float64{}
	var total float64
	for i := range c.Sample {
		r := &c.Sample[i]
		w := float64(r.Packets) * float64(max(r.SamplingRate, 1))
		bySource[r.SrcAddr()] += w
		total += w
	}
	if total == 0 {
		return s
	}
	for a, w := range bySource {
		s.TopSources = append(s.TopSources, events.Share{Value: a.String(), Share: w / total})
	}
	slices.SortFunc(s.TopSources, func(a, b events.Share) int {
		if c := cmp.Compare(b.Share, a.Share); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
	if len(s.TopSources) > topSources {
		s.TopSources = s.TopSources[:topSources]
	}
	return s
}
