package main

import "github.com/kapkan-io/kapkan/ingest"

// ingestOptions loads the configuration (defaults when path is empty) and
// derives the ingest options. Placeholder until config/ lands.
func ingestOptions(path string) (ingest.Options, error) {
	_ = path
	return ingest.Options{DefaultSamplingRate: 1}, nil
}
