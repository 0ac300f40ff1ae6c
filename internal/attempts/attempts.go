// Package attempts runs one delivery (a notification, a health ping) with
// a few retries and a doubling wait, on cenkalti/backoff: a receiver that
// is down costs a bounded time and never fails a backup.
package attempts

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Defaults of Policy.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultRetries   = 2
	DefaultRetryWait = time.Second
)

// Policy says how often and how long to try; zero values are the defaults.
type Policy struct {
	Timeout   time.Duration // of one attempt (default 10 s)
	Retries   int           // after a failed attempt (default 2; negative: none)
	RetryWait time.Duration // before the first retry, doubled before each next one (default 1 s)
}

// WithDefaults fills in the zero values.
func (p Policy) WithDefaults() Policy {
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.Retries == 0 {
		p.Retries = DefaultRetries
	}
	if p.Retries < 0 {
		p.Retries = 0
	}
	if p.RetryWait <= 0 {
		p.RetryWait = DefaultRetryWait
	}
	return p
}

// Final marks an error that another attempt cannot mend (Do returns it
// without retrying).
func Final(err error) error { return backoff.Permanent(err) }

// Do calls try until it succeeds, returns a Final error, the retries are
// spent or ctx ends. p is taken as it is: give it WithDefaults' result (a
// Retries of 0 there means none). Do returns try's last error (unwrapped
// from Final), never the context's, so the caller can say what failed.
func Do(ctx context.Context, p Policy, try func() error) error {
	if p.Retries < 0 {
		p.Retries = 0
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval: p.RetryWait, Multiplier: 2, MaxInterval: time.Duration(1<<62 - 1),
		Stop: backoff.Stop, Clock: backoff.SystemClock,
	}
	b.Reset()
	var last error
	err := backoff.Retry(func() error {
		last = try()
		return last
	}, backoff.WithContext(backoff.WithMaxRetries(b, uint64(p.Retries)), ctx))
	if err == nil {
		return nil
	}
	var final *backoff.PermanentError
	if errors.As(last, &final) {
		return final.Err
	}
	if last != nil {
		return last
	}
	return err
}
