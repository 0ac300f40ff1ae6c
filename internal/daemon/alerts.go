package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/platback/platback/internal/config"
	"github.com/platback/platback/internal/healthping"
	"github.com/platback/platback/internal/notify"
	"github.com/platback/platback/internal/runner"
)

// DeliveryTimeout bounds the pings and the notification at the end of a
// run, which go out also when the run was cancelled (SIGTERM).
const DeliveryTimeout = time.Minute

// Alerts tell people about runs: health pings when a run starts and ends,
// and a notification of its outcome. Nil fields send nothing; a failure to
// send is logged and counted, never a failure of the run.
type Alerts struct {
	Notifier notify.Notifier
	Ping     *healthping.Pinger
	// Stack names the stack in messages; a run that got as far as the plan
	// names its own project(s).
	Stack notify.Stack
	Log   *slog.Logger
}

// Delivery counts what the alerts of one run sent and failed to send.
// The last-run file carries it from `sidecar run-once` to the daemon's
// metrics.
type Delivery struct {
	NotificationsSent   int `json:"notifications_sent,omitempty"`
	NotificationsFailed int `json:"notifications_failed,omitempty"`
	PingsSent           int `json:"pings_sent,omitempty"`
	PingsFailed         int `json:"pings_failed,omitempty"`
}

func (d *Delivery) add(o Delivery) {
	d.NotificationsSent += o.NotificationsSent
	d.NotificationsFailed += o.NotificationsFailed
	d.PingsSent += o.PingsSent
	d.PingsFailed += o.PingsFailed
}

// Backup is one backup run as the daemon's schedule and `sidecar
// run-once` both do it, under the run lock (wait: behind a running one;
// else runlock.ErrBusy): the start ping, the run, the end ping and the
// notification, then own (when not nil) and the last-run file, written
// with what was delivered. by is "daemon" or "run-once".
func Backup(ctx context.Context, rn *runner.Runner, al Alerts, by string, wait bool, own func(runner.Result, Delivery)) (runner.Result, error) {
	var res runner.Result
	err := rn.Exclusive(ctx, wait, func() error {
		d := al.started(ctx)
		res = rn.Run(ctx) // records its metrics as it goes
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DeliveryTimeout)
		d.add(al.finished(dctx, res))
		cancel()
		if own != nil {
			own(res, d)
		}
		if err := saveLastRun(rn.Config.CacheDir, res, by, d); err != nil {
			al.log().Warn("could not record the run's result", "err", err)
		}
		return nil
	})
	return res, err
}

// started pings <url>/start.
func (al Alerts) started(ctx context.Context) Delivery {
	var d Delivery
	if al.Ping == nil {
		return d
	}
	if err := al.Ping.Start(ctx); err != nil {
		d.PingsFailed++
		al.log().Warn("health ping failed", "err", err)
	} else {
		d.PingsSent++
	}
	return d
}

// finished pings the run's end and sends its notification.
func (al Alerts) finished(ctx context.Context, res runner.Result) Delivery {
	var d Delivery
	if al.Ping != nil {
		var err error
		if res.OK() {
			err = al.Ping.Success(ctx, notify.RunMessage(al.stack(res), outcome(res)).Text)
		} else {
			err = al.Ping.Fail(ctx, failure(res))
		}
		if err != nil {
			d.PingsFailed++
			al.log().Warn("health ping failed", "err", err)
		} else {
			d.PingsSent++
		}
	}
	nd := al.notify(ctx, notify.RunMessage(al.stack(res), outcome(res)))
	d.add(nd)
	if c := res.Copy; c != nil && c.Err != nil {
		d.add(al.notify(ctx, notify.CopyMessage(al.stack(res), c.Repository, c.Err)))
	}
	return d
}

// notify sends m and logs what failed.
func (al Alerts) notify(ctx context.Context, m notify.Message) Delivery {
	if al.Notifier == nil {
		return Delivery{}
	}
	nd := al.Notifier.Notify(ctx, m)
	for _, err := range nd.Errs {
		al.log().Warn("notification failed", "title", m.Title, "err", err)
	}
	if nd.Sent > 0 {
		al.log().Info("notification sent", "title", m.Title, "urls", nd.Sent)
	}
	return Delivery{NotificationsSent: nd.Sent, NotificationsFailed: nd.Failed}
}

// stack is al.Stack with the run's own project(s), when it has them.
func (al Alerts) stack(res runner.Result) notify.Stack {
	s := al.Stack
	switch len(res.Projects) {
	case 0:
	case 1:
		s.Project = res.Projects[0]
	default:
		s.Project = fmt.Sprint(res.Projects)
	}
	return s
}

func (al Alerts) log() *slog.Logger {
	if al.Log == nil {
		return slog.Default()
	}
	return al.Log
}

// outcome is what a message needs of a run's result.
func outcome(res runner.Result) notify.Outcome {
	o := notify.Outcome{Start: res.Start, Duration: res.Duration, Err: res.Err, Retention: res.Retention, Check: res.Check}
	if res.Copy != nil && res.Copy.OK() {
		o.CopiedTo = res.Copy.Repository
	}
	for _, t := range res.Targets {
		o.Targets = append(o.Targets, notify.Target{Path: t.Path, Kind: t.Kind, BytesAdded: t.BytesAdded, Err: t.Err})
	}
	return o
}

// NewAlerts builds the alerts of the configuration: a notifier for
// NOTIFICATION_URLS and a pinger for HEALTHCHECK_URL, each only when set.
// Their Stack is for the caller to fill in.
func NewAlerts(cfg config.Config, log *slog.Logger) (Alerts, error) {
	al := Alerts{Log: log}
	if len(cfg.NotificationURLs) > 0 {
		n, err := notify.New(cfg.NotificationURLs, notify.Options{Level: cfg.NotificationLevel})
		if err != nil {
			return al, fmt.Errorf("NOTIFICATION_URLS: %w", err)
		}
		al.Notifier = n
		log.Debug("notifications", "urls", n.URLs(), "level", cfg.NotificationLevel.String())
	}
	if cfg.HealthcheckURL != "" {
		p, err := healthping.New(cfg.HealthcheckURL, healthping.Options{})
		if err != nil {
			return al, fmt.Errorf("HEALTHCHECK_URL: %w", err)
		}
		al.Ping = p
		log.Debug("health pings", "url", p.String())
	}
	return al, nil
}
