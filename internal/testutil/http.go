package testutil

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Get fetches url and returns its body; anything but 200 fails the test.
func Get(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, bufio.NewReader(resp.Body))
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	return b.String()
}
