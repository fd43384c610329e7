package testutil

import (
	"encoding/json"
	"strings"
	"sync"
)

// LogLines collects the lines of a JSON log written from several
// goroutines (a daemon under test), for a test to search.
type LogLines struct {
	mu    sync.Mutex
	lines []string
	part  strings.Builder
}

func (b *LogLines) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.part.Write(p)
	s := b.part.String()
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		b.lines = append(b.lines, s[:i])
		s = s[i+1:]
	}
	b.part.Reset()
	b.part.WriteString(s)
	return len(p), nil
}

// All is every line so far, joined.
func (b *LogLines) All() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

// Find returns the first line whose msg is msg, decoded, or nil.
func (b *LogLines) Find(msg string) map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		var j map[string]any
		if json.Unmarshal([]byte(l), &j) == nil && j["msg"] == msg {
			return j
		}
	}
	return nil
}
