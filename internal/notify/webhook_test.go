package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// request is what a webhook got.
type request struct {
	method, path, contentType, auth, body string
}

func hookServer(t *testing.T) (host string, got func() []request) {
	t.Helper()
	var mu sync.Mutex
	var reqs []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		reqs = append(reqs, request{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(b)})
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), reqs...)
	}
}

// Webhooks take shoutrrr's generic URL options: template=json (the title,
// the message and the URL's $values as a JSON object, with titlekey and
// messagekey), @Header values, method; a named template is refused at
// start-up, as is shoutrrr's logger service.
func TestWebhookOptions(t *testing.T) {
	host, got := hookServer(t)
	for _, tc := range []struct {
		url  string
		want request
		json map[string]string
	}{
		{url: "generic+http://" + host + "/plain", want: request{method: "POST", path: "/plain", contentType: "text/plain", body: "the text"}},
		{url: "generic+http://" + host + "/json?template=json&@Authorization=Bearer+SECRETTOKEN&$stack=shop&method=PUT",
			want: request{method: "PUT", path: "/json", contentType: "application/json", auth: "Bearer SECRETTOKEN"},
			json: map[string]string{"title": "the title", "message": "the text", "stack": "shop"}},
		{url: "generic://" + host + "/keys?disabletls=yes&template=JSON&titlekey=subject&messagekey=body",
			want: request{method: "POST", path: "/keys", contentType: "application/json"},
			json: map[string]string{"subject": "the title", "body": "the text"}},
	} {
		n, err := New([]string{tc.url}, Options{})
		require.NoError(t, err, tc.url)
		before := len(got())
		d := n.Notify(context.Background(), Message{Title: "the title", Text: "the text"})
		require.Equal(t, 1, d.Sent, "%s: %v", tc.url, d.Errs)
		reqs := got()
		require.Len(t, reqs, before+1)
		r := reqs[before]
		if tc.json != nil {
			var body map[string]string
			require.NoError(t, json.Unmarshal([]byte(r.body), &body), r.body)
			assert.Equal(t, tc.json, body, tc.url)
			r.body = ""
		}
		assert.Equal(t, tc.want, r, tc.url)
	}

	for raw, want := range map[string]string{
		"generic+https://hooks.example/p?template=mine": "names a template, and platback loads no templates",
		"logger://":            "logger service is not offered",
		"nosuch://x":           `shoutrrr has no service "nosuch"`,
		"telegram+https://x/y": "takes no telegram+ form",
	} {
		err := CheckURL(raw)
		require.Error(t, err, raw)
		assert.Contains(t, err.Error(), want, raw)
	}
}

// The sidecar's binary executes no text/template template: its reflection
// (reflect.Value.MethodByName) would make the linker keep every exported
// method of every type, a quarter of the binary and of every sidecar
// process's resident memory (golang/go#72895). shoutrrr's generic, smtp
// and logger services execute templates; platback sends webhooks and mail
// itself for that reason.
func TestSidecarExecutesNoTemplates(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sidecar")
	}
	bin := filepath.Join(t.TempDir(), "sidecar")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/sidecar")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	nm, err := exec.Command("go", "tool", "nm", bin).Output()
	require.NoError(t, err)
	assert.NotContains(t, string(nm), "text/template.(*state).evalField", "a text/template execution is linked into the sidecar")
	assert.NotContains(t, string(nm), "shoutrrr/pkg/services/specialized/generic.(*Service).Send")
	assert.NotContains(t, string(nm), "shoutrrr/pkg/services/email/smtp.(*Service).Send")
	if st, err := os.Stat(bin); err == nil {
		t.Logf("sidecar binary (not stripped): %.1f MB", float64(st.Size())/1e6)
	}
}
