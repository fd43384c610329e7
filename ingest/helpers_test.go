package ingest

import (
	"io"
	"log/slog"
)

func newDiscardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
