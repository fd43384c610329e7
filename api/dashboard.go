package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
)

// dashboardCSP is the dashboard's Content-Security-Policy: everything it
// loads comes from the daemon itself (no CDN, no inline script or style),
// and no other site may frame it.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// dashboard serves the web dashboard's files from memory, each kept as
// is and gzipped (compressed once, when the server is built).
type dashboard struct {
	files map[string]*asset // by path below the root, "index.html"
}

type asset struct {
	body, gz    []byte
	contentType string
	etag        string
}

// newDashboard reads every file of fsys.
func newDashboard(fsys fs.FS) (*dashboard, error) {
	d := &dashboard{files: map[string]*asset{}}
	err := fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		if _, err := zw.Write(body); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		d.files[p] = &asset{body: body, gz: gz.Bytes(), contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the dashboard's files: %w", err)
	}
	if d.files["index.html"] == nil {
		return nil, fmt.Errorf("the dashboard's files have no index.html")
	}
	return d, nil
}

func (d *dashboard) index(c *gin.Context) { d.serve(c, d.files["index.html"]) }

func (d *dashboard) file(c *gin.Context) {
	a := d.files[strings.TrimPrefix(c.Param("file"), "/")]
	if a == nil {
		c.Status(http.StatusNotFound)
		return
	}
	d.serve(c, a)
}

// serve answers one file: revalidated on every load (no-cache with an
// ETag, so a new daemon's files are never mixed with old ones), gzipped
// when the client takes it.
func (d *dashboard) serve(c *gin.Context, a *asset) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("Vary", "Accept-Encoding")
	if c.GetHeader("If-None-Match") == a.etag {
		c.Status(http.StatusNotModified)
		return
	}
	body := a.body
	if strings.Contains(c.GetHeader("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	c.Data(http.StatusOK, a.contentType, body)
}
