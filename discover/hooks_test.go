package discover

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func hookLabels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[lp+"hooks."+kv[i]] = kv[i+1]
	}
	return m
}

// hookLine is a hook as "stage.N cmd context on-error" for compact expectations.
func hookLine(h Hook) string {
	return strings.Join([]string{string(h.Stage) + "." + itoa(h.Order), h.Cmd, orDash(h.Context), h.OnError}, " ")
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestParseHooks(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		hooks  []string
		warns  []string // substrings, one per expected warning, in order
	}{
		{"stack-back's scheme, ordered by stage then number (numerically)",
			hookLabels("finally.1.cmd", "f", "post.1.cmd", "p", "pre.10.cmd", "ten", "pre.2.cmd", "two",
				"pre.2.on-error", "continue", "pre.2.context", "db", "error.1.cmd", "e"),
			[]string{"pre.2 two db continue", "pre.10 ten - abort", "post.1 p - abort", "error.1 e - abort", "finally.1 f - abort"}, nil},
		{"on-error in any case and with spaces",
			hookLabels("pre.1.cmd", "x", "pre.1.on-error", " Continue "),
			[]string{"pre.1 x - continue"}, nil},
		{"a bad on-error is abort (stack-back's default), with the fix",
			hookLabels("pre.1.cmd", "x", "pre.1.on-error", "ignore"),
			[]string{"pre.1 x - abort"}, []string{lp + `hooks.pre.1.on-error="ignore": want abort or continue; abort is used`}},
		{"no cmd: the hook is skipped and the label named",
			hookLabels("pre.1.context", "db", "pre.2.cmd", " "),
			nil, []string{"hook " + lp + "hooks.pre.1 has no command, ignored: set " + lp + "hooks.pre.1.cmd", "hook " + lp + "hooks.pre.2 has no command"}},
		{"unknown stage, number, property; a timeout label points at HOOK_TIMEOUT",
			hookLabels("before.1.cmd", "x", "pre.first.cmd", "y", "pre.1.command", "z", "pre.1.cmd", "ok", "pre.1.timeout", "10s", "pre.1.on_error", "continue", "pre.cmd", "w"),
			[]string{"pre.1 ok - abort"},
			[]string{`unknown hook stage "before", ignored: use pre, post, error or finally`,
				"not a hook label, ignored: write " + lp + "hooks.<pre|post|error|finally>.<N>.cmd",
				`unknown hook property "command"`,
				`unknown hook property "on_error", ignored: use cmd, context or on-error; did you mean on-error?`,
				"set HOOK_TIMEOUT on the sidecar",
				`hook number "first" is not a whole number`}},
		{"two labels for one hook (1 and 01)",
			hookLabels("pre.1.cmd", "a", "pre.01.cmd", "b"),
			[]string{"pre.1 b - abort"}, []string{"sets the same hook as " + lp + "hooks.pre.01.cmd, ignored"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hooks, warns := parseHooks("c", tt.labels, lp)
			var got []string
			for _, h := range hooks {
				got = append(got, hookLine(h))
				assert.Equal(t, lp+"hooks."+string(h.Stage)+"."+itoa(h.Order), h.Label)
			}
			assert.Equal(t, tt.hooks, got)
			require.Len(t, warns, len(tt.warns), "%v", warns)
			for _, w := range tt.warns {
				found := false
				for _, g := range warns {
					found = found || strings.Contains(g.String(), w)
				}
				assert.True(t, found, "no warning contains %q in %v", w, warns)
			}
		})
	}
}

func TestHookLabelsAreKnown(t *testing.T) {
	labels := hookLabels("pre.1.cmd", "x", "post.1.cmd", "y")
	labels[lp+"volumes"] = "true"
	_, warns := parseLabels("c", labels, lp)
	assert.Empty(t, warns, "hook labels are no unknown labels")

	_, warns = parseLabels("c", map[string]string{lp + "hook.pre.1.cmd": "x"}, lp)
	require.Len(t, warns, 1)
	assert.Contains(t, warns[0].String(), "did you mean "+lp+"hooks.pre.1.cmd?")
}

func TestBuildPlanHooks(t *testing.T) {
	self := selfA()
	sidecar := ctr("a", "backup", hookLabels("pre.1.cmd", "on-sidecar"))
	sidecar.ID, sidecar.Name = self.ContainerID, self.ContainerName
	cs := []Container{
		sidecar,
		ctr("a", "app", map[string]string{lp + "volumes": "true", lp + "hooks.pre.1.cmd": "maintenance on",
			lp + "hooks.pre.2.cmd": "flush", lp + "hooks.pre.2.context": "db", lp + "hooks.finally.1.cmd": "maintenance off",
			lp + "hooks.post.1.cmd": "x", lp + "hooks.post.1.context": "nosuch"}, vol("a_data", "/data")),
		ctr("a", "db", map[string]string{lp + "postgres": "true", "POSTGRES_PASSWORD": "x"}),
		ctr("a", "web", map[string]string{lp + "hooks.pre.1.cmd": "not backed up"}),
		ctr("b", "other", map[string]string{lp + "volumes": "true", lp + "hooks.pre.1.cmd": "other project"}, vol("b", "/b")),
	}
	p := BuildPlan(Options{}, self, cs)
	require.Len(t, p.Hooks, 4, "%+v", p.Hooks)
	app, db := cs[1].ref(), cs[2].ref()
	assert.Equal(t, Hook{Stage: HookPre, Order: 1, Label: lp + "hooks.pre.1", Cmd: "maintenance on", OnError: HookAbort, Source: app, Container: app}, p.Hooks[0])
	assert.Equal(t, db, p.Hooks[1].Container, ".context runs it in the db service's container")
	assert.Equal(t, app, p.Hooks[1].Source, "it still wraps app's backup")
	assert.Equal(t, HookPost, p.Hooks[2].Stage)
	assert.Empty(t, p.Hooks[2].Container.ID, "no container of the context service")
	assert.Equal(t, HookFinally, p.Hooks[3].Stage)
	assert.Equal(t, []Hook{p.Hooks[0], p.Hooks[1]}, p.HooksOf(app.ID, HookPre))
	assert.Equal(t, []ContainerRef{app}, p.HookSources())

	var warns []string
	for _, w := range p.Warnings {
		warns = append(warns, w.String())
	}
	all := strings.Join(warns, "\n")
	assert.Contains(t, all, `container a-backup-1: label `+lp+`hooks.pre.1.cmd="on-sidecar": hooks on the sidecar itself are not run by platback`)
	assert.Contains(t, all, `container a-web-1: label `+lp+`hooks.pre.1.cmd="not backed up": its hooks are ignored: the container has no backup label`)
	assert.Contains(t, all, `label `+lp+`hooks.post.1.context="nosuch": no running container of service "nosuch" in project "a"`)
	assert.NotContains(t, all, "other project", "another project's hooks are not even mentioned")

	var buf bytes.Buffer
	require.NoError(t, p.WriteTable(&buf))
	assert.Contains(t, buf.String(), "Hooks (run with sh -c")
	assert.Contains(t, buf.String(), `a-app-1 (app): `+lp+`hooks.pre.2: "flush" in a-db-1 (context db), on-error abort`)
	raw, err := json.Marshal(p)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"hooks":[{"stage":"pre","order":1,"label":"`+lp+`hooks.pre.1","cmd":"maintenance on","on_error":"abort"`)
}
