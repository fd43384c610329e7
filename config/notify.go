package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// notifierKeys names, for every key that belongs to some notifier types
// only, the types it belongs to.
var notifierKeys = []struct {
	key   string
	types []string
	value func(*Notifier) bool // set?
}{
	{"bot_token_file", []string{"telegram"}, func(n *Notifier) bool { return n.BotTokenFile != "" }},
	{"bot_token_env", []string{"telegram"}, func(n *Notifier) bool { return n.BotTokenEnv != "" }},
	{"chat_id", []string{"telegram"}, func(n *Notifier) bool { return n.ChatID != "" }},
	{"api_url", []string{"telegram"}, func(n *Notifier) bool { return n.APIURL != "" }},
	{"url", []string{"slack", "webhook"}, func(n *Notifier) bool { return n.URL != "" }},
	{"url_file", []string{"slack", "webhook"}, func(n *Notifier) bool { return n.URLFile != "" }},
	{"url_env", []string{"slack", "webhook"}, func(n *Notifier) bool { return n.URLEnv != "" }},
	{"secret_file", []string{"webhook"}, func(n *Notifier) bool { return n.SecretFile != "" }},
	{"secret_env", []string{"webhook"}, func(n *Notifier) bool { return n.SecretEnv != "" }},
	{"smtp", []string{"email"}, func(n *Notifier) bool { return n.SMTP != "" }},
	{"from", []string{"email"}, func(n *Notifier) bool { return n.From != "" }},
	{"to", []string{"email"}, func(n *Notifier) bool { return len(n.To) > 0 }},
	{"username", []string{"email"}, func(n *Notifier) bool { return n.Username != "" }},
	{"password_file", []string{"email"}, func(n *Notifier) bool { return n.PasswordFile != "" }},
	{"password_env", []string{"email"}, func(n *Notifier) bool { return n.PasswordEnv != "" }},
	{"ca_file", []string{"email"}, func(n *Notifier) bool { return n.CAFile != "" }},
	{"command", []string{"exec"}, func(n *Notifier) bool { return n.Command != "" }},
	{"mode", []string{"exec"}, func(n *Notifier) bool { return n.Mode != "" }},
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (v *validator) notify() {
	names := map[string]int{}
	for i := range v.c.Notify {
		n := &v.c.Notify[i]
		path := fmt.Sprintf("notify[%d]", i)
		v.listName(names, "notify", i, n.Name, "", `a name like "noc-slack"`, hostgroupName, validNameWant)
		known := slices.Contains(NotifierTypes, n.Type)
		if !known {
			what := fmt.Sprintf("%q is not a notifier type", n.Type)
			if n.Type == "" {
				what = "no type"
			}
			v.errorf(path+".type", "%s (want one of %s)", what, strings.Join(NotifierTypes, ", "))
		}
		v.notifierCommon(path, n)
		// Inline secrets, refused whatever the type.
		for _, s := range []struct{ key, value, want string }{
			{"bot_token", n.BotToken, "bot_token_file or bot_token_env"},
			{"password", n.Password, "password_file or password_env"},
			{"secret", n.Secret, "secret_file or secret_env"},
		} {
			if _, set := v.c.pos[path+"."+s.key]; set || s.value != "" {
				v.errorf(path+"."+s.key, "a secret written in the config is refused (want %s: the secret in a file or an environment variable)", s.want)
			}
		}
		if !known {
			continue
		}
		for _, k := range notifierKeys {
			if k.value(n) && !slices.Contains(k.types, n.Type) {
				v.errorf(path+"."+k.key, "is not a key of type %s (it is for %s)", n.Type, strings.Join(k.types, ", "))
			}
		}
		switch n.Type {
		case "telegram":
			v.oneSecret(path, "bot token", "bot_token_file", n.BotTokenFile, "bot_token_env", n.BotTokenEnv, true)
			if strings.TrimSpace(n.ChatID) == "" {
				v.errorf(path+".chat_id", "no chat id (want the chat's id, like \"-1001234567890\", or \"@channelname\")")
			}
			if n.APIURL != "" {
				v.httpURL(path+".api_url", n.APIURL)
			}
		case "slack", "webhook":
			set := 0
			for _, s := range []string{n.URL, n.URLFile, n.URLEnv} {
				if s != "" {
					set++
				}
			}
			if set != 1 {
				v.errorf(path, "%s", countSet(set))
			}
			if n.URL != "" {
				v.httpURL(path+".url", n.URL)
			}
			v.fileKey(path+".url_file", n.URLFile)
			v.envKey(path+".url_env", n.URLEnv)
			if n.Type == "webhook" {
				v.oneSecret(path, "signing secret", "secret_file", n.SecretFile, "secret_env", n.SecretEnv, false)
			}
		case "email":
			v.notifierEmail(path, n)
		case "exec":
			v.notifierExec(path, n)
		}
	}
}

func countSet(n int) string {
	if n == 0 {
		return "no address to post to (want one of url, url_file or url_env)"
	}
	return fmt.Sprintf("%d of url, url_file and url_env are set (want exactly one)", n)
}

func (v *validator) notifierCommon(path string, n *Notifier) {
	if len(n.Events) == 0 {
		v.errorf(path+".events", "no events (want some of %s; leave the key out for the default)", strings.Join(NotifierEvents, ", "))
	}
	for j, e := range n.Events {
		if !slices.Contains(NotifierEvents, e) {
			v.errorf(fmt.Sprintf("%s.events[%d]", path, j), "%q is not an event a notifier is sent (want one of %s)", e, strings.Join(NotifierEvents, ", "))
		}
	}
	if t := n.Timeout.Duration; t < 100*time.Millisecond || t > 5*time.Minute {
		v.errorf(path+".timeout", "%s is out of range (want 100ms to 5m)", t)
	}
	if n.RatePerMinute < 0 || n.RatePerMinute > 100000 {
		v.errorf(path+".rate_per_minute", "%d is out of range (want 0 for no limit, up to 100000)", n.RatePerMinute)
	}
	if n.QueueSize < 1 || n.QueueSize > 100000 {
		v.errorf(path+".queue_size", "%d is out of range (want 1 to 100000)", n.QueueSize)
	}
	if n.Retries < 0 || n.Retries > 20 {
		v.errorf(path+".retries", "%d is out of range (want 0 to 20)", n.Retries)
	}
}

// oneSecret checks a secret given by a file or an environment variable:
// not both, and one of them when required.
func (v *validator) oneSecret(path, what, fileKey, file, envKey, env string, required bool) {
	switch {
	case file != "" && env != "":
		v.errorf(path+"."+envKey, "both %s and %s are set (want one)", fileKey, envKey)
	case required && file == "" && env == "":
		v.errorf(path, "no %s (want %s or %s)", what, fileKey, envKey)
	}
	v.fileKey(path+"."+fileKey, file)
	v.envKey(path+"."+envKey, env)
}

// fileKey checks a file name; whether the file exists is checked when the
// notifiers are built (kapkan check, and the daemon at start).
func (v *validator) fileKey(path, file string) {
	if file != "" && strings.TrimSpace(file) != file {
		v.errorf(path, "%q has spaces around it (want a file name)", file)
	}
}

func (v *validator) envKey(path, env string) {
	if env != "" && !envName.MatchString(env) {
		v.errorf(path, "%q is not an environment variable name (want letters, digits and \"_\", like KAPKAN_TOKEN)", env)
	}
}

// httpURL checks an http or https URL. The value is never in the error:
// a webhook's URL may carry its key.
func (v *validator) httpURL(path, s string) {
	const want = "want one like \"https://hooks.example.net/kapkan\"; the value is not shown, it may hold a key"
	u, err := url.Parse(s)
	switch {
	case err != nil:
		v.errorf(path, "the value does not parse as a URL (%s)", want)
	case u.Scheme != "http" && u.Scheme != "https":
		v.errorf(path, "the scheme is not http or https (%s)", want)
	case u.Host == "":
		v.errorf(path, "the URL has no host (%s)", want)
	}
}

func (v *validator) notifierEmail(path string, n *Notifier) {
	if n.SMTP == "" {
		v.errorf(path+".smtp", "no mail server (want host:port, like \"smtp.example.net:587\")")
	} else if v.hostPort(path+".smtp", n.SMTP, "TCP", "smtp.example.net:587") {
		if h, p, _ := net.SplitHostPort(n.SMTP); h == "" || p == "0" {
			v.errorf(path+".smtp", "%q has no host or port 0 (want host:port, like \"smtp.example.net:587\")", n.SMTP)
		}
	}
	if n.From == "" {
		v.errorf(path+".from", "no sender (want an address like \"kapkan@example.net\")")
	} else if _, err := mail.ParseAddress(n.From); err != nil {
		v.errorf(path+".from", "%q is not an email address (want one like \"Kapkan <kapkan@example.net>\")", n.From)
	}
	if len(n.To) == 0 {
		v.errorf(path+".to", "no recipient (want a list of addresses, like [noc@example.net])")
	}
	for j, to := range n.To {
		if _, err := mail.ParseAddress(to); err != nil {
			v.errorf(fmt.Sprintf("%s.to[%d]", path, j), "%q is not an email address (want one like \"noc@example.net\")", to)
		}
	}
	if n.Username != "" {
		v.oneSecret(path, "password for username "+n.Username, "password_file", n.PasswordFile, "password_env", n.PasswordEnv, true)
	} else if n.PasswordFile != "" || n.PasswordEnv != "" {
		v.errorf(path+".username", "a password is set but no username (want both, or neither for no authentication)")
		v.fileKey(path+".password_file", n.PasswordFile)
		v.envKey(path+".password_env", n.PasswordEnv)
	}
	v.fileKey(path+".ca_file", n.CAFile)
}

func (v *validator) notifierExec(path string, n *Notifier) {
	switch {
	case n.Command == "":
		v.errorf(path+".command", "no command (want the absolute path of a program, like /usr/local/bin/notify_about_attack.sh)")
	case !filepath.IsAbs(n.Command):
		v.errorf(path+".command", "%q is not an absolute path (want one like /usr/local/bin/notify_about_attack.sh; it is run directly, never through a shell)", n.Command)
	}
	if !slices.Contains(NotifierModes, n.Mode) {
		what := fmt.Sprintf("%q is not a mode", n.Mode)
		if n.Mode == "" {
			what = "no mode"
		}
		v.errorf(path+".mode", "%s (want fastnetmon or json)", what)
	}
	if n.Mode != "fastnetmon" {
		return
	}
	if n.DryRun {
		v.errorf(path+".dry_run", "true is refused with mode fastnetmon: a script called with ban would block traffic Kapkan only pretends to (want false, or mode json)")
	}
}
