// Package notify tells people when a backup needs them: it turns run
// outcomes (and a backup gone stale, a failing start-up check) into short
// messages naming the stack, the targets, the cause and the fix, and sends
// them to the URLs of NOTIFICATION_URLS: shoutrrr's URLs and services (its
// generic webhooks and smtp e-mail read by shoutrrr and sent by this
// package; see services.go).
package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/platback/platback/internal/attempts"
	"github.com/platback/platback/internal/redact"
)

// Level is how much is sent: LevelError sends failures only (a failed
// run, target or check, a stale backup, a failing start-up check),
// LevelInfo successful runs too.
type Level int

// Levels of NOTIFICATION_LEVEL.
const (
	LevelError Level = iota
	LevelInfo
)

// ErrBadLevel is returned by ParseLevel for anything but error or info.
var ErrBadLevel = errors.New("want error (failures only, the default) or info (successful runs too)")

// ParseLevel reads NOTIFICATION_LEVEL; empty is LevelError.
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "error":
		return LevelError, nil
	case "info":
		return LevelInfo, nil
	}
	return LevelError, ErrBadLevel
}

func (l Level) String() string {
	if l == LevelInfo {
		return "info"
	}
	return "error"
}

// Message is one notification. Level is LevelError for a failure,
// LevelInfo for a success.
type Message struct {
	Level Level
	Title string
	Text  string
}

// Delivery is what sending one message did: to how many URLs it went and
// failed to go, and why (each error redacted: no token of a URL in it).
type Delivery struct {
	Sent, Failed int
	Errs         []error
}

// Notifier sends messages. It is all the daemon and `sidecar run-once`
// need; a failure to send is reported in the Delivery, never fatal.
type Notifier interface {
	Notify(ctx context.Context, m Message) Delivery
}

// Options tune a Shoutrrr; zero values are the defaults.
type Options struct {
	// Level is the least level sent (default LevelError: failures only).
	Level Level
	// Policy bounds one attempt to one URL and its retries (the defaults of
	// package attempts: 10 s, 2 retries, waits of 1 s then 2 s).
	attempts.Policy
}

// Shoutrrr is a Notifier sending to shoutrrr URLs, each on its own, so
// that one failing service neither hides nor delays the others' count.
type Shoutrrr struct {
	o       Options
	senders []sender
}

type sender struct {
	shown   string // the URL redacted, for logs
	svc     service
	secrets redact.Secrets
}

// New checks every URL (as CheckURL) and returns a Notifier for them. A
// URL shoutrrr cannot use is an error naming it redacted.
func New(urls []string, o Options) (*Shoutrrr, error) {
	o.Policy = o.Policy.WithDefaults()
	n := &Shoutrrr{o: o}
	for i, raw := range urls {
		svc, err := checkedService(raw)
		if err != nil {
			return nil, fmt.Errorf("URL %d of %d (%s): %w", i+1, len(urls), RedactURL(raw), err)
		}
		n.senders = append(n.senders, sender{shown: RedactURL(raw), svc: svc, secrets: urlSecrets(raw)})
	}
	return n, nil
}

// URLs returns the URLs redacted, for the start-up log.
func (n *Shoutrrr) URLs() []string {
	var out []string
	for _, s := range n.senders {
		out = append(out, s.shown)
	}
	return out
}

// Notify sends m to every URL when its level is enabled, retrying each
// failed URL; the errors name the URL redacted.
func (n *Shoutrrr) Notify(ctx context.Context, m Message) Delivery {
	var d Delivery
	if m.Level > n.o.Level {
		return d
	}
	for _, s := range n.senders {
		err := n.send(ctx, s, m)
		if err != nil {
			d.Failed++
			d.Errs = append(d.Errs, fmt.Errorf("%s: %s", s.shown, s.secrets.String(err.Error())))
			continue
		}
		d.Sent++
	}
	return d
}

func (n *Shoutrrr) send(ctx context.Context, s sender, m Message) error {
	return attempts.Do(ctx, n.o.Policy, func() error {
		return s.svc.send(ctx, m, n.o.Timeout)
	})
}

// checkedService is newService with its error explained without the URL.
func checkedService(raw string) (service, error) {
	svc, err := newService(strings.TrimSpace(raw))
	if err != nil {
		return nil, urlProblem(raw, err)
	}
	return svc, nil
}

// CheckURL reports whether raw can be sent to; the error says what is
// wrong and never holds the URL or a part of it (they carry tokens).
func CheckURL(raw string) error {
	_, err := checkedService(raw)
	return err
}

// urlProblem turns shoutrrr's error for raw into one without raw in it.
func urlProblem(raw string, err error) error {
	scheme, _, _ := strings.Cut(raw, "://")
	service, _, _ := strings.Cut(scheme, "+")
	const example = "e.g. telegram://token@telegram?chats=@channel, ntfy://ntfy.sh/topic, or generic+https://host/path for a plain webhook"
	switch {
	case !strings.Contains(raw, "://"):
		return fmt.Errorf("not a URL: want service://…, %s", example)
	case errors.Is(err, errUnknownService):
		return fmt.Errorf("shoutrrr has no service %q: want one of its services (see https://shoutrrr.nickfedor.com), %s", strings.ToLower(service), example)
	case errors.Is(err, errLoggerService):
		return errors.New("shoutrrr's logger service is not offered: the sidecar's log already shows every notification that fails; use a service that reaches people")
	case errors.Is(err, errParseURL):
		return fmt.Errorf("not a valid URL: %s", example)
	case errors.Is(err, errCustomURL):
		return fmt.Errorf("the %s service takes no %s+ form: write %s://…", service, service, service)
	case errors.Is(err, errCustomURLConvert), errors.Is(err, errServiceInitialize):
		return fmt.Errorf("shoutrrr cannot use this %s URL: check its format in shoutrrr's documentation of the %s service", service, service)
	}
	return errors.New(urlSecrets(raw).String(err.Error()))
}

// RedactURL shows a notification URL without what may be a token: its
// scheme and host, the rest as redact.Marker.
func RedactURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme == "" {
		scheme, _, ok := strings.Cut(raw, "://")
		if ok && schemeRE.MatchString(scheme) {
			return scheme + "://" + redact.Marker
		}
		return redact.Marker
	}
	out := u.Scheme + "://"
	if u.User != nil {
		out += redact.Marker + "@"
	}
	out += u.Host
	if strings.Trim(u.EscapedPath(), "/") != "" || u.RawQuery != "" || u.Opaque != "" || u.Fragment != "" {
		out += "/" + redact.Marker
	}
	return out
}

var schemeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*$`)

// urlSecrets are the parts of a URL that may be tokens: the URL itself,
// its user and password, path segments and query values, raw and decoded.
func urlSecrets(raw string) redact.Secrets {
	vals := []string{raw, strings.TrimSpace(raw)}
	if u, err := url.Parse(strings.TrimSpace(raw)); err == nil {
		if u.User != nil {
			p, _ := u.User.Password()
			vals = append(vals, u.User.String(), u.User.Username(), p)
		}
		for _, seg := range strings.Split(u.EscapedPath(), "/") {
			dec, _ := url.PathUnescape(seg)
			vals = append(vals, seg, dec)
		}
		vals = append(vals, u.RawQuery, u.Opaque, u.Fragment)
		for _, vs := range u.Query() {
			for _, v := range vs {
				vals = append(vals, v, url.QueryEscape(v), url.PathEscape(v))
			}
		}
	}
	return redact.NewSecrets(vals...)
}

// SplitURLs splits NOTIFICATION_URLS: URLs separated by spaces, newlines
// or commas. A comma separates two URLs only when a URL follows it, so a
// comma inside a URL (telegram's chats=a,b) stays.
func SplitURLs(s string) []string {
	var out []string
	for _, field := range strings.Fields(s) {
		parts := strings.Split(field, ",")
		cur := ""
		for i, p := range parts {
			switch {
			case i == 0:
				cur = p
			case startsURL.MatchString(p):
				out = appendNonEmpty(out, cur)
				cur = p
			default:
				cur += "," + p
			}
		}
		out = appendNonEmpty(out, cur)
	}
	return out
}

var startsURL = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://`)

func appendNonEmpty(out []string, s string) []string {
	if s = strings.Trim(s, ", "); s != "" {
		out = append(out, s)
	}
	return out
}
