package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
)

// WebhookVersion is the version of the webhook body (and of the exec json
// mode's stdin): {"version": 1, "event": {...}}.
const WebhookVersion = 1

// SignatureHeader carries sha256=<hex HMAC-SHA256 of the body> when the
// webhook has a secret.
const SignatureHeader = "X-Kapkan-Signature"

// webhook posts the event as versioned JSON, signed when it has a secret.
type webhook struct {
	url    string
	key    []byte // nil: unsigned
	client *http.Client
}

func newWebhook(c config.Notifier, deps *Deps, client *http.Client) (*webhook, error) {
	u, err := endpoint(c, deps)
	if err != nil {
		return nil, err
	}
	s, err := secret(deps, "signing secret", c.SecretFile, c.SecretEnv)
	if err != nil {
		return nil, err
	}
	w := &webhook{url: u, client: client}
	if s != "" {
		w.key = []byte(s)
	}
	return w, nil
}

// envelope renders the versioned JSON body of an event (& < > written as
// they are).
func envelope(e *events.Event) []byte {
	b := []byte(`{"version":1,"event":`)
	b = events.AppendJSON(b, e)
	return append(b, '}')
}

// Sign returns the X-Kapkan-Signature value of body under key.
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (w *webhook) Notify(ctx context.Context, e *events.Event) (bool, error) {
	body := envelope(e)
	h := http.Header{}
	if w.key != nil {
		h.Set(SignatureHeader, Sign(w.key, body))
	}
	return post(ctx, w.client, "webhook", w.url, body, h)
}
