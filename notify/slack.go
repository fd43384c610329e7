package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
)

// slack posts to an incoming webhook: the message as text, with a header
// block for the title and a section block for the details.
type slack struct {
	url    string // a secret: the URL is the credential
	client *http.Client
}

func newSlack(c config.Notifier, deps *Deps, client *http.Client) (*slack, error) {
	u, err := endpoint(c, deps)
	if err != nil {
		return nil, err
	}
	return &slack{url: u, client: client}, nil
}

// endpoint returns the URL of a slack or webhook channel.
func endpoint(c config.Notifier, deps *Deps) (string, error) {
	if c.URL != "" {
		return c.URL, nil
	}
	u, err := secret(deps, "url", c.URLFile, c.URLEnv)
	if err == nil && u == "" {
		err = errors.New("no url")
	}
	if err == nil && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		err = errors.New("the url read is not an http or https URL")
	}
	return u, err
}

// slackEscape escapes the three characters Slack's text format reserves.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type slackBlock struct {
	Type string    `json:"type"`
	Text slackText `json:"text"`
}

func (s *slack) Notify(ctx context.Context, e *events.Event) (bool, error) {
	m := render(e)
	title := slackEscape.Replace(m.Title)
	details := "```" + slackEscape.Replace(strings.TrimRight(m.Body, "\n")) + "```"
	body, err := json.Marshal(struct {
		Text   string       `json:"text"`
		Blocks []slackBlock `json:"blocks"`
	}{
		Text: title + "\n" + slackEscape.Replace(m.Body),
		Blocks: []slackBlock{
			{Type: "header", Text: slackText{Type: "plain_text", Text: truncate(m.Title, 150)}},
			{Type: "section", Text: slackText{Type: "mrkdwn", Text: truncate(details, 3000)}},
		},
	})
	if err != nil {
		return false, err
	}
	return post(ctx, s.client, "slack", s.url, body, nil)
}

// truncate cuts s to n bytes at most, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-3]
	for len(s) > 0 && !utf8RuneStart(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s + "..."
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
