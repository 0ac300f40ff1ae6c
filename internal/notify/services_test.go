package notify

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/attempts"
)

// Every supported service is shoutrrr's, and every other one of shoutrrr's
// is named in otherServices, so that an upgrade adding one is noticed.
// (The test binary links shoutrrr's router; the sidecar does not.)
func TestServicesAreShoutrrrs(t *testing.T) {
	all := (&router.ServiceRouter{}).ListServices()
	slices.Sort(all)
	mine := append(Services(), otherServices...)
	slices.Sort(mine)
	assert.Equal(t, all, mine)
	for _, s := range otherServices {
		assert.NotContains(t, services, s)
	}
}

// Each supported service takes a URL in the form of shoutrrr's
// documentation; a scheme outside them fails, naming it and the supported
// ones, and never the URL's tokens.
func TestCheckURLServices(t *testing.T) {
	ok := map[string][]string{
		"discord":    {"discord://SECRETTOKEN@693853386302554172?thread_id=123456789"},
		"generic":    {"generic+https://hooks.example.com/api/v1/backup?contenttype=text/plain", "generic://hooks.example.com/backup"},
		"googlechat": {"googlechat://chat.googleapis.com/v1/spaces/FOO/messages?key=bar&token=SECRETTOKEN"},
		"gotify":     {"gotify://gotify.example.com/AzyoeNS.D4iJLVa", "gotify://gotify.example.com:443/path/to/gotify/AzyoeNS.D4iJLVa?priority=8"},
		"matrix":     {"matrix://:SECRETTOKEN@matrix.example.com/?rooms=!roomid:example.com"},
		"mattermost": {"mattermost://backup@mattermost.example.com/bywsw8zt5jgpte3nm65qjiru6h/alerts"},
		"ntfy":       {"ntfy://ntfy.sh/backups", "ntfy://user:SECRETTOKEN@ntfy.example.com:8080/backups?priority=5&tags=warning"},
		"pushover":   {"pushover://shoutrrr:SECRETTOKEN@userkey/?devices=phone"},
		"rocketchat": {"rocketchat://rocketchat.example.com/8eGdRzc9r4YYNyvge/2XYQcX9NBwJBKfQnphpebPcnXZcPEi32Nt4NKJfrnbhsbRfX/alerts"},
		"slack":      {"slack://hook:WNA3PBYV6-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi@webhook", "slack://xoxb:123456789012-1234567890123-4mt0t4l1YL3g1T5L4cK70k3N@C001CH4NN3L"},
		"smtp":       {"smtp://backup:SECRETTOKEN@smtp.example.com:587/?fromaddress=backup@example.com&toaddresses=ops@example.com,oncall@example.com"},
		"teams":      {"teams://11111111-4444-4444-8444-cccccccccccc@22222222-4444-4444-8444-cccccccccccc/33333333012222222222333333333344/44444444-4444-4444-8444-cccccccccccc/V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05?host=contoso.webhook.office.com"},
		"telegram":   {"telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=@backups,-1001234567890"},
		"zulip":      {"zulip://backup-bot%40example.zulipchat.com:SECRETTOKEN@example.zulipchat.com?stream=ops&topic=backups"},
	}
	assert.ElementsMatch(t, Services(), slices.Collect(maps.Keys(ok)), "every supported service has an example here")
	for service, urls := range ok {
		for _, u := range urls {
			t.Run(u, func(t *testing.T) {
				require.NoError(t, CheckURL(u))
				s, err := newService(u)
				require.NoError(t, err)
				assert.Equal(t, service, s.GetID())
			})
		}
	}

	for _, tt := range []struct{ url, want string }{
		{"bark://SECRETTOKEN@bark.example.com", `platback does not include shoutrrr's "bark" service: want one of `},
		{"pagerduty://events.pagerduty.com/SECRETTOKEN", `platback does not include shoutrrr's "pagerduty" service: want one of `},
		{"signal+https://user:SECRETTOKEN@signal.example.com/+15551234567/+15557654321", `platback does not include shoutrrr's "signal" service: want one of `},
		{"teleg://123456:SECRETTOKEN@telegram?chats=@backups", `shoutrrr has no service "teleg": want one of `},
		{"https://hooks.example.com/SECRETTOKEN", `shoutrrr has no service "https": want one of `},
		{"Webhook+https://hooks.example.com/SECRETTOKEN", `shoutrrr has no service "webhook": want one of `},
	} {
		t.Run(tt.url, func(t *testing.T) {
			err := CheckURL(tt.url)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), supported())
			for _, s := range Services() {
				assert.Contains(t, err.Error(), s)
			}
			assert.NotContains(t, err.Error(), "SECRETTOKEN")
		})
	}
	assert.True(t, strings.HasPrefix(supported(), "discord, generic, googlechat, "), supported())
	assert.True(t, strings.HasSuffix(supported(), ", telegram or zulip"), supported())
}

// An attempt longer than the policy's timeout is given up, as shoutrrr's
// router gave it up, and counted as failed.
func TestSendTimesOut(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		<-release
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	n, err := New([]string{"generic+" + slow.URL + "/hook"}, Options{Policy: attempts.Policy{Timeout: 50 * time.Millisecond, Retries: -1}})
	require.NoError(t, err)
	start := time.Now()
	d := n.Notify(context.Background(), Message{Level: LevelError, Text: "boom"})
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, 1, d.Failed)
	require.Len(t, d.Errs, 1)
	assert.Contains(t, d.Errs[0].Error(), "timed out after 50ms")
}
