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

// TelegramAPI is the Bot API's address.
const TelegramAPI = "https://api.telegram.org"

// telegram posts plain-text messages with the Bot API's sendMessage.
type telegram struct {
	url    string // .../bot<token>/sendMessage: a secret
	chatID string
	client *http.Client
}

func newTelegram(c config.Notifier, deps *Deps, client *http.Client) (*telegram, error) {
	token, err := secret(deps, "bot token", c.BotTokenFile, c.BotTokenEnv)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("no bot token")
	}
	api := strings.TrimRight(c.APIURL, "/")
	if api == "" {
		api = TelegramAPI
	}
	return &telegram{url: api + "/bot" + token + "/sendMessage", chatID: c.ChatID, client: client}, nil
}

func (t *telegram) Notify(ctx context.Context, e *events.Event) (bool, error) {
	// Plain text (no parse_mode): nothing in a message needs escaping.
	body, err := json.Marshal(struct {
		ChatID                string `json:"chat_id"`
		Text                  string `json:"text"`
		DisableWebPagePreview bool   `json:"disable_web_page_preview"`
	}{t.chatID, render(e).Text(), true})
	if err != nil {
		return false, err
	}
	retry, err := post(ctx, t.client, "telegram", t.url, body, nil)
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After == 0 {
		// Telegram says when in its body: {"parameters":{"retry_after":N}}.
		var answer struct {
			Parameters struct {
				RetryAfter int `json:"retry_after"`
			} `json:"parameters"`
		}
		if msg := ra.Err.Error(); strings.Contains(msg, "{") {
			_ = json.Unmarshal([]byte(msg[strings.Index(msg, "{"):]), &answer)
			ra.After = secondsDuration(answer.Parameters.RetryAfter)
		}
	}
	return retry, err
}
