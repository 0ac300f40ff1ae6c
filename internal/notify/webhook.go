package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/services/specialized/generic"
)

// webhook sends to shoutrrr's generic URLs (generic+https://host/path,
// generic://host/path?disabletls=yes), read by shoutrrr's generic
// configuration and sent as its service sends them: the message as a
// text/plain body, or with template=json a JSON object of the title, the
// message and the URL's $extra values; @Header values as headers.
// Named templates are refused: none can be loaded through a URL.
type webhook struct {
	url                  *url.URL
	method, contentType  string
	json                 bool
	titleKey, messageKey string
	headers, extra       map[string]string
}

func newWebhook(u *url.URL, custom bool) (*webhook, error) {
	// As shoutrrr's router does, but with the concrete type: a
	// types.Service holding it would link its sender (see services.go).
	svc := &generic.Service{}
	if custom {
		var err error
		if u, err = svc.GetConfigURLFromCustom(u); err != nil {
			return nil, fmt.Errorf("%w: %w", errCustomURLConvert, err)
		}
	}
	if err := svc.Initialize(u, nil); err != nil {
		return nil, fmt.Errorf("%w: %w", errServiceInitialize, err)
	}
	cfg := svc.Config
	w := &webhook{url: cfg.WebhookURL(), method: cfg.RequestMethod, contentType: cfg.ContentType,
		titleKey: cfg.TitleKey, messageKey: cfg.MessageKey, headers: map[string]string{}, extra: map[string]string{}}
	switch cfg.Template {
	case "":
		w.contentType = "text/plain"
	case "json", generic.JSONTemplate:
		w.json = true
	default:
		return nil, errors.New("generic: the URL names a template, and platback loads no templates: leave template= out (the message is the body) or use template=json")
	}
	// The configuration keeps its @header and $extra values to itself; its
	// URL gives them back.
	for key, vals := range cfg.GetURL().Query() {
		switch {
		case len(key) < 2 || len(vals) == 0:
		case key[0] == '@':
			w.headers[key[1:]] = vals[0]
		case key[0] == '$':
			w.extra[key[1:]] = vals[0]
		}
	}
	return w, nil
}

func (w *webhook) send(ctx context.Context, m Message, timeout time.Duration) error {
	body := m.Text
	if w.json {
		payload := map[string]string{w.messageKey: m.Text}
		if m.Title != "" {
			payload[w.titleKey] = m.Title
		}
		for k, v := range w.extra { // as shoutrrr: the URL's values win
			payload[k] = v
		}
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		body = string(b)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, w.method, w.url.String(), strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", w.contentType)
	req.Header.Set("Accept", w.contentType)
	for k, v := range w.headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode >= http.StatusBadRequest {
		return fmt.Errorf("webhook answered %s", res.Status)
	}
	return nil
}
