package notify

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/discord"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/googlechat"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/matrix"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/mattermost"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/rocketchat"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/slack"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/teams"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/telegram"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/zulip"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/email/smtp"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/gotify"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/ntfy"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/pushover"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/specialized/generic"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"
)

// services are the shoutrrr services NOTIFICATION_URLS can use, by URL
// scheme. They are chosen, not all of shoutrrr's: its router links and
// initialises every one of its ~25 services, which made the idle daemon's
// binary (and so its resident memory) several MB bigger. Adding one is a
// line here and in config's NOTIFICATION_URLS doc; otherServices must then
// lose it.
var services = map[string]func() types.Service{
	"discord":    func() types.Service { return &discord.Service{} },
	"generic":    func() types.Service { return &generic.Service{} },
	"googlechat": func() types.Service { return &googlechat.Service{} },
	"gotify":     func() types.Service { return &gotify.Service{} },
	"matrix":     func() types.Service { return &matrix.Service{} },
	"mattermost": func() types.Service { return &mattermost.Service{} },
	"ntfy":       func() types.Service { return &ntfy.Service{} },
	"pushover":   func() types.Service { return &pushover.Service{} },
	"rocketchat": func() types.Service { return &rocketchat.Service{} },
	"slack":      func() types.Service { return &slack.Service{} },
	"smtp":       func() types.Service { return &smtp.Service{} },
	"teams":      func() types.Service { return &teams.Service{} },
	"telegram":   func() types.Service { return &telegram.Service{} },
	"zulip":      func() types.Service { return &zulip.Service{} },
}

// otherServices are shoutrrr's services (v0.13) left out of services, so
// that an error can say platback does not include one rather than that it
// does not exist.
var otherServices = []string{"bark", "hangouts", "ifttt", "join", "lark", "logger", "notifiarr", "opsgenie", "pagerduty", "pushbullet", "signal", "wecom"}

// Services are the URL schemes NOTIFICATION_URLS can use, sorted.
func Services() []string {
	out := make([]string, 0, len(services))
	for s := range services {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Errors of newService, each wrapping shoutrrr's own where there is one.
var (
	errNotURL         = errors.New("not a URL")
	errUnknownService = errors.New("unknown service")
	errNotIncluded    = errors.New("service not included")
	errNoCustomURL    = errors.New("custom URLs are not supported by service")
	errCustomURL      = errors.New("failed to convert custom URL")
	errInitialize     = errors.New("failed to initialize service")
)

// newService builds the service of one URL the way shoutrrr's router does
// (pkg/router: scheme, then a service+custom URL converted by the
// service, then the service's own parsing of its URL) from services only.
// Its errors may repeat the URL: urlProblem says what is wrong without it.
func newService(raw string) (types.Service, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotURL, err)
	}
	scheme, _, custom := strings.Cut(u.Scheme, "+")
	scheme = strings.ToLower(scheme)
	build, ok := services[scheme]
	if !ok {
		if slices.Contains(otherServices, scheme) {
			return nil, fmt.Errorf("%w: %q", errNotIncluded, scheme)
		}
		return nil, fmt.Errorf("%w: %q", errUnknownService, scheme)
	}
	s := build()
	if custom {
		c, ok := s.(types.CustomURLService)
		if !ok {
			return nil, fmt.Errorf("%w: %q", errNoCustomURL, scheme)
		}
		if u, err = c.GetConfigURLFromCustom(u); err != nil {
			return nil, fmt.Errorf("%w: %w", errCustomURL, err)
		}
	}
	if err := s.Initialize(u, nil); err != nil {
		return nil, fmt.Errorf("%w: %w", errInitialize, err)
	}
	return s, nil
}

// errTimedOut is an attempt that took longer than Options.Timeout.
var errTimedOut = errors.New("failed to send: timed out")

// sendWithin sends as shoutrrr's router does: the services take no
// context, so an attempt taking longer than timeout is given up and its
// goroutine left to finish on its own.
func sendWithin(s types.Service, timeout time.Duration, text string, params types.Params) error {
	done := make(chan error, 1)
	go func() { done <- s.Send(text, &params) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w after %s: using %s", errTimedOut, timeout, s.GetID())
	}
}
