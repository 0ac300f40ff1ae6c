package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/discord"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/googlechat"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/lark"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/matrix"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/mattermost"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/rocketchat"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/signal"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/slack"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/teams"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/telegram"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/wecom"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/zulip"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/incident/opsgenie"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/incident/pagerduty"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/bark"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/gotify"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/ifttt"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/join"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/ntfy"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/pushbullet"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/pushover"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/specialized/notifiarr"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"
)

// service sends a message to one URL, within timeout.
type service interface {
	send(ctx context.Context, m Message, timeout time.Duration) error
}

// shoutrrrServices are the shoutrrr services sent through as shoutrrr
// sends, by URL scheme: those of shoutrrr's router except generic, smtp and
// logger. The first two are sent by platback itself (webhook.go, email.go)
// from the configuration shoutrrr reads from their URLs; logger is not
// offered. Their senders execute text/template templates, whose
// reflect.Value.MethodByName keeps every exported method of every type in
// the Go binary (golang/go#72895): without them the sidecar's binary is a
// quarter smaller, and so is every sidecar process's resident memory.
var shoutrrrServices = map[string]func() types.Service{
	"bark":       func() types.Service { return &bark.Service{} },
	"discord":    func() types.Service { return &discord.Service{} },
	"gotify":     func() types.Service { return &gotify.Service{} },
	"googlechat": func() types.Service { return &googlechat.Service{} },
	"hangouts":   func() types.Service { return &googlechat.Service{} },
	"ifttt":      func() types.Service { return &ifttt.Service{} },
	"lark":       func() types.Service { return &lark.Service{} },
	"join":       func() types.Service { return &join.Service{} },
	"matrix":     func() types.Service { return &matrix.Service{} },
	"mattermost": func() types.Service { return &mattermost.Service{} },
	"notifiarr":  func() types.Service { return &notifiarr.Service{} },
	"ntfy":       func() types.Service { return &ntfy.Service{} },
	"opsgenie":   func() types.Service { return &opsgenie.Service{} },
	"pagerduty":  func() types.Service { return &pagerduty.Service{} },
	"pushbullet": func() types.Service { return &pushbullet.Service{} },
	"pushover":   func() types.Service { return &pushover.Service{} },
	"rocketchat": func() types.Service { return &rocketchat.Service{} },
	"signal":     func() types.Service { return &signal.Service{} },
	"slack":      func() types.Service { return &slack.Service{} },
	"teams":      func() types.Service { return &teams.Service{} },
	"telegram":   func() types.Service { return &telegram.Service{} },
	"wecom":      func() types.Service { return &wecom.Service{} },
	"zulip":      func() types.Service { return &zulip.Service{} },
}

// Errors of newService; urlProblem turns them into advice.
var (
	errParseURL          = errors.New("not a valid URL")
	errUnknownService    = errors.New("unknown service")
	errLoggerService     = errors.New("the logger service is not offered")
	errCustomURL         = errors.New("custom URLs are not supported by this service")
	errCustomURLConvert  = errors.New("custom URL conversion failed")
	errServiceInitialize = errors.New("service initialisation failed")
	errTimeout           = errors.New("timed out")
)

// newService reads a notification URL as shoutrrr's router does:
// service://… or, for services that take one, service+scheme://… (a
// custom URL such as generic+https://host/path).
func newService(raw string) (service, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errParseURL
	}
	scheme, _, _ := strings.Cut(strings.ToLower(u.Scheme), "+")
	custom := !strings.EqualFold(u.Scheme, scheme)
	switch scheme {
	case "generic":
		return newWebhook(u, custom)
	case "smtp":
		if custom {
			return nil, errCustomURL
		}
		return newEmail(u)
	case "logger":
		return nil, errLoggerService
	}
	newSvc, ok := shoutrrrServices[scheme]
	if !ok {
		return nil, errUnknownService
	}
	svc := newSvc()
	if custom {
		cs, ok := svc.(types.CustomURLService)
		if !ok {
			return nil, errCustomURL
		}
		if u, err = cs.GetConfigURLFromCustom(u); err != nil {
			return nil, errCustomURLConvert
		}
	}
	if err := svc.Initialize(u, nil); err != nil {
		return nil, fmt.Errorf("%w: %w", errServiceInitialize, err)
	}
	return shoutrrrService{svc}, nil
}

// shoutrrrService sends through a shoutrrr service.
type shoutrrrService struct{ svc types.Service }

func (s shoutrrrService) send(ctx context.Context, m Message, timeout time.Duration) error {
	params := types.Params{}
	if m.Title != "" {
		params.SetTitle(m.Title)
	}
	done := make(chan error, 1)
	go func() { done <- s.svc.Send(m.Text, &params) }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("%s: %w after %s", s.svc.GetID(), errTimeout, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}
