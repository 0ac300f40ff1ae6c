package attempts

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDo(t *testing.T) {
	fail := errors.New("receiver down")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		p         Policy
		failFirst int  // attempts that fail before one succeeds
		final     bool // the failure is Final
		calls     int
		err       error
	}{
		{"first attempt succeeds", context.Background(), Policy{Retries: 2, RetryWait: time.Millisecond}, 0, false, 1, nil},
		{"second retry succeeds", context.Background(), Policy{Retries: 2, RetryWait: time.Millisecond}, 2, false, 3, nil},
		{"retries spent", context.Background(), Policy{Retries: 2, RetryWait: time.Millisecond}, 9, false, 3, fail},
		{"no retries", context.Background(), Policy{Retries: 0, RetryWait: time.Millisecond}, 9, false, 1, fail},
		{"final error stops", context.Background(), Policy{Retries: 2, RetryWait: time.Millisecond}, 9, true, 1, fail},
		{"cancelled: the last error, not the context's", cancelled, Policy{Retries: 2, RetryWait: time.Millisecond}, 9, false, 1, fail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Do(tc.ctx, tc.p, func() error {
				calls++
				if calls <= tc.failFirst {
					if tc.final {
						return Final(fail)
					}
					return fail
				}
				return nil
			})
			if calls != tc.calls || !errors.Is(err, tc.err) || (tc.err != nil && err != tc.err) {
				t.Errorf("calls %d, err %v; want %d, %v", calls, err, tc.calls, tc.err)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	if got := (Policy{}).WithDefaults(); got != (Policy{Timeout: DefaultTimeout, Retries: DefaultRetries, RetryWait: DefaultRetryWait}) {
		t.Errorf("zero policy: %+v", got)
	}
	if got := (Policy{Retries: -1}).WithDefaults(); got.Retries != 0 {
		t.Errorf("negative retries mean none: %+v", got)
	}
}
