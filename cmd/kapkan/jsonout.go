package main

import (
	"encoding/json"
	"io"
)

// People read Kapkan's JSON (log lines, replay output, the API), so it is
// written without the HTML escaping encoding/json applies by default: a
// FlowSpec match "syn&!ack" stays that, not "syn\u0026!ack".

// newJSONEncoder writes JSON lines without HTML escaping.
func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}
