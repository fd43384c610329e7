package main

import (
	"net/netip"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/ingest"
)

// ingestOptionsFrom derives the decoder's options from the configuration.
func ingestOptionsFrom(cfg *config.Config) ingest.Options {
	o := ingest.Options{
		DefaultSamplingRate: cfg.Ingest.DefaultSamplingRate,
		Window:              cfg.Detection.Window.Duration,
	}
	if len(cfg.Ingest.Exporters) > 0 {
		o.Exporters = make(map[netip.Addr]ingest.ExporterOptions, len(cfg.Ingest.Exporters))
		for _, e := range cfg.Ingest.Exporters {
			o.Exporters[e.Address.Unmap()] = ingest.ExporterOptions{Name: e.Name, SamplingRate: e.SamplingRate}
		}
	}
	return o
}

// ingestOptions loads the configuration (defaults when path is empty) and
// derives the ingest options.
func ingestOptions(path string) (ingest.Options, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return ingest.Options{}, err
	}
	return ingestOptionsFrom(cfg), nil
}
