// Package healthping reports runs to a dead man's switch in the
// healthchecks.io convention: <url>/start when a run starts, <url> when it
// succeeded, <url>/fail with the error text as the body when it failed.
// Pings are retried a few times; a ping that fails is the caller's to log
// and count, never a reason to fail a backup.
package healthping

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/platback/platback/internal/attempts"
	"github.com/platback/platback/internal/redact"
)

// MaxBody is the most bytes of a body sent (healthchecks.io keeps 100 kB;
// the start of an error text says what matters).
const MaxBody = 10 << 10

// Options tune a Pinger (timeout of one attempt, retries, the first
// wait); zero values are the defaults of package attempts.
type Options attempts.Policy

// Pinger pings one check's URL.
type Pinger struct {
	base    *url.URL
	shown   string
	secrets redact.Secrets
	client  *http.Client
	o       Options
}

// Parse checks a HEALTHCHECK_URL: an http or https URL with a host. The
// error never holds the URL (its path is the check's secret).
func Parse(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil:
		return nil, errors.New("not a valid URL: want the check's ping URL, e.g. https://hc-ping.com/<uuid>")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("want an http:// or https:// ping URL, e.g. https://hc-ping.com/<uuid>")
	case u.Host == "":
		return nil, errors.New("the URL has no host: want e.g. https://hc-ping.com/<uuid>")
	}
	return u, nil
}

// New returns a Pinger for raw (see Parse).
func New(raw string, o Options) (*Pinger, error) {
	u, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	o = Options(attempts.Policy(o).WithDefaults())
	vals := []string{raw, u.String(), u.RawQuery}
	for seg := range strings.SplitSeq(u.EscapedPath(), "/") {
		dec, _ := url.PathUnescape(seg)
		vals = append(vals, seg, dec)
	}
	for _, vs := range u.Query() {
		vals = append(vals, vs...)
	}
	return &Pinger{base: u, shown: Redact(raw), secrets: redact.NewSecrets(vals...), client: &http.Client{Timeout: o.Timeout}, o: o}, nil
}

// Redact shows a ping URL without its path and query, where the check's
// secret is.
func Redact(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return redact.Marker
	}
	out := u.Scheme + "://"
	if u.User != nil {
		out += redact.Marker + "@"
	}
	out += u.Host
	if strings.Trim(u.EscapedPath(), "/") != "" || u.RawQuery != "" {
		out += "/" + redact.Marker
	}
	return out
}

// String is the URL redacted, for logs.
func (p *Pinger) String() string { return p.shown }

// Start pings <url>/start: a run started.
func (p *Pinger) Start(ctx context.Context) error { return p.ping(ctx, "/start", "") }

// Success pings <url>, with body (a summary) as the check's log.
func (p *Pinger) Success(ctx context.Context, body string) error { return p.ping(ctx, "", body) }

// Fail pings <url>/fail with body, the error text, cut at MaxBody bytes.
func (p *Pinger) Fail(ctx context.Context, body string) error { return p.ping(ctx, "/fail", body) }

// URL is the URL of a ping: the base with suffix appended to its path.
func (p *Pinger) URL(suffix string) string {
	u := *p.base
	if suffix != "" {
		u.Path = strings.TrimSuffix(u.Path, "/") + suffix
		if u.RawPath != "" {
			u.RawPath = strings.TrimSuffix(u.RawPath, "/") + suffix
		}
	}
	return u.String()
}

// ping POSTs body to the URL with suffix, retrying network errors, 5xx
// and 429 answers. The error names the URL redacted.
func (p *Pinger) ping(ctx context.Context, suffix, body string) error {
	if len(body) > MaxBody {
		cut := MaxBody
		for cut > 0 && body[cut]&0xC0 == 0x80 { // not inside a UTF-8 sequence
			cut--
		}
		body = body[:cut]
	}
	err := attempts.Do(ctx, attempts.Policy(p.o), func() error {
		retry, err := p.post(ctx, p.URL(suffix), body)
		if err != nil && !retry {
			return attempts.Final(err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("ping %s%s: %s", p.shown, suffix, p.secrets.String(err.Error()))
	}
	return nil
}

// post sends one ping; retry says whether another attempt may succeed.
func (p *Pinger) post(ctx context.Context, target, body string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("User-Agent", "platback")
	resp, err := p.client.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 {
		return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests,
			fmt.Errorf("answered %s", resp.Status)
	}
	return false, nil
}
