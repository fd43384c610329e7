package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// post sends body to u and classifies the answer the way every HTTP
// channel wants: 2xx delivered; 429 and 5xx worth retrying (429 with its
// Retry-After); another status failed for good; a network error worth
// retrying. Errors never carry the URL: for Telegram and Slack it holds
// the secret.
func post(ctx context.Context, client *http.Client, what, u string, body []byte, header http.Header) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("post to %s: bad request", what) // the URL was checked at load
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kapkan")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, fmt.Errorf("post to %s: %w", what, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	err = fmt.Errorf("post to %s: %s: %s", what, resp.Status, scrub(strings.TrimSpace(string(snippet)), u))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return true, &RetryAfterError{After: retryAfter(resp.Header.Get("Retry-After")), Err: err}
	case resp.StatusCode >= 500:
		return true, err
	}
	return false, err
}

// scrub removes from a server's answer what of the URL it may echo and
// may be a secret (the Telegram token and the Slack key are in the path,
// a webhook's key may be in the query): the URL itself, its path and
// query, and each of their parts of 8 bytes or more that is not a plain
// word like sendMessage (a Telegram "bot<token>" part also without "bot").
func scrub(answer, u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return answer
	}
	parts := []string{u, parsed.EscapedPath(), parsed.Path, parsed.RawQuery}
	for _, seg := range strings.Split(parsed.Path, "/") {
		parts = append(parts, seg, strings.TrimPrefix(seg, "bot"))
	}
	for _, vs := range parsed.Query() {
		parts = append(parts, vs...)
	}
	if p, ok := parsed.User.Password(); ok {
		parts = append(parts, p)
	}
	slices.SortFunc(parts, func(a, b string) int { return len(b) - len(a) }) // the longest first
	for _, p := range parts {
		if len(p) >= 8 && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			answer = strings.ReplaceAll(answer, p, "<redacted>")
		}
	}
	return answer
}

// retryAfter reads a Retry-After header: seconds or an HTTP date; 0 when
// absent or unreadable.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

func secondsDuration(s int) time.Duration { return time.Duration(max(0, s)) * time.Second }
