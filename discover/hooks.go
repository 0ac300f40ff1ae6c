package discover

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// LabelHooks starts the hook labels, stack-back's scheme (its
// src/restic_compose_backup/hooks.py):
// <prefix>hooks.<stage>.<N>.cmd, .context and .on-error.
const LabelHooks = "hooks"

// HookStage is when a hook runs.
type HookStage string

// The hook stages, in stack-back's try/except/finally order: pre before the
// backup (and before any container is stopped), post after a backup that
// succeeded, error after one that failed, finally always; post, error and
// finally once the stopped containers are running again.
const (
	HookPre     HookStage = "pre"
	HookPost    HookStage = "post"
	HookError   HookStage = "error"
	HookFinally HookStage = "finally"
)

// HookStages in the order they run.
var HookStages = []HookStage{HookPre, HookPost, HookError, HookFinally}

// What a failing hook does (label .on-error).
const (
	// HookAbort (the default, as in stack-back): the hooks after it in its
	// stage do not run and the stage fails; a failed pre hook means its
	// service's targets are not backed up.
	HookAbort = "abort"
	// HookContinue: the failure is logged and the next hook runs.
	HookContinue = "continue"
)

// hookProps are the properties a hook label may end with.
var hookProps = []string{"cmd", "context", "on-error"}

// Hook is a command run inside a container around the backup of the
// container that carries its labels.
type Hook struct {
	Stage HookStage `json:"stage"`
	// Order is N in the label: a stage's hooks run in increasing N.
	Order int `json:"order"`
	// Label names the hook in messages: <prefix>hooks.<stage>.<N>.
	Label string `json:"label"`
	// Cmd is the label's value, run with `sh -c` in Container.
	Cmd     string `json:"cmd"`
	OnError string `json:"on_error"`
	// Context is the compose service named by .context, empty when the hook
	// runs where its labels are.
	Context string `json:"context,omitempty"`
	// Source is the container that carries the labels: the hook wraps the
	// backup of the plan's targets of that container.
	Source ContainerRef `json:"source"`
	// Container is where Cmd runs: Source, or the running container of the
	// Context service (the first by compose number). Its ID is empty when
	// no container of that service runs: the hook then fails at run time.
	Container ContainerRef `json:"container"`
}

// String describes the hook on one line.
func (h Hook) String() string {
	where := h.Container.Name
	if h.Context != "" {
		where = orDash(where) + " (context " + h.Context + ")"
	}
	return fmt.Sprintf("%s: %s in %s, on-error %s", h.Label, quote(h.Cmd), where, h.OnError)
}

// isHookLabel reports whether key is under <prefix>hooks.
func isHookLabel(key, prefix string) bool {
	return strings.HasPrefix(key, prefix+LabelHooks+".")
}

// parseHooks reads a container's hook labels: the hooks in stage then N
// order, and a warning naming the label and the fix for each label it
// cannot use. Like stack-back it skips a hook without cmd and takes an
// unknown on-error as abort.
func parseHooks(container string, labels map[string]string, prefix string) ([]Hook, []Warning) {
	var warns []Warning
	warn := func(key, msg string) {
		warns = append(warns, Warning{Container: container, Label: key, Value: labels[key], Message: msg})
	}
	type key struct {
		stage HookStage
		n     int
	}
	props := map[key]map[string]string{}
	seen := map[key]map[string]string{} // property → the label that set it
	var keys []string
	for k := range labels {
		if isHookLabel(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	stages := make([]string, len(HookStages))
	for i, s := range HookStages {
		stages[i] = string(s)
	}
	for _, k := range keys {
		parts := strings.SplitN(strings.TrimPrefix(k, prefix+LabelHooks+"."), ".", 3)
		if len(parts) != 3 {
			warn(k, "not a hook label, ignored: write "+prefix+LabelHooks+".<pre|post|error|finally>.<N>.cmd (and .context, .on-error)")
			continue
		}
		stage, num, prop := parts[0], parts[1], parts[2]
		if !slices.Contains(stages, stage) {
			warn(k, "unknown hook stage "+quote(stage)+", ignored: use pre, post, error or finally")
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			warn(k, "hook number "+quote(num)+" is not a whole number, ignored: write e.g. "+prefix+LabelHooks+"."+stage+".1."+prop)
			continue
		}
		if !slices.Contains(hookProps, prop) {
			msg := "unknown hook property " + quote(prop) + ", ignored: use cmd, context or on-error"
			if prop == "timeout" {
				msg += " (hooks have no timeout of their own, as in stack-back: set HOOK_TIMEOUT on the sidecar)"
			} else if s := closestLabel(prop, hookProps); s != "" {
				msg += "; did you mean " + s + "?"
			}
			warn(k, msg)
			continue
		}
		hk := key{HookStage(stage), n}
		if props[hk] == nil {
			props[hk], seen[hk] = map[string]string{}, map[string]string{}
		}
		if other, dup := seen[hk][prop]; dup {
			warn(k, "sets the same hook as "+other+", ignored: give each hook one number")
			continue
		}
		props[hk][prop], seen[hk][prop] = labels[k], k
	}

	var hooks []Hook
	for hk, p := range props {
		label := prefix + LabelHooks + "." + string(hk.stage) + "." + strconv.Itoa(hk.n)
		cmd := p["cmd"]
		if strings.TrimSpace(cmd) == "" {
			k := seen[hk]["cmd"]
			if k == "" {
				for _, prop := range hookProps {
					if k = seen[hk][prop]; k != "" {
						break
					}
				}
			}
			warn(k, "hook "+label+" has no command, ignored: set "+label+".cmd")
			continue
		}
		onError, set := p["on-error"]
		onError = strings.ToLower(strings.TrimSpace(onError))
		switch {
		case !set:
			onError = HookAbort
		case onError != HookAbort && onError != HookContinue:
			warn(label+".on-error", "want abort or continue; abort is used (stack-back's default)")
			onError = HookAbort
		}
		hooks = append(hooks, Hook{Stage: hk.stage, Order: hk.n, Label: label, Cmd: cmd, OnError: onError,
			Context: strings.TrimSpace(p["context"])})
	}
	slices.SortFunc(hooks, func(a, b Hook) int {
		return cmp.Or(cmp.Compare(slices.Index(HookStages, a.Stage), slices.Index(HookStages, b.Stage)), cmp.Compare(a.Order, b.Order))
	})
	return hooks, warns
}

// HooksOf returns the plan's hooks of stage whose labels are on the
// container with id source, in order.
func (p Plan) HooksOf(source string, stage HookStage) []Hook {
	var out []Hook
	for _, h := range p.Hooks {
		if h.Source.ID == source && h.Stage == stage {
			out = append(out, h)
		}
	}
	return out
}

// HookSources are the containers that carry hooks, in plan order.
func (p Plan) HookSources() []ContainerRef {
	var out []ContainerRef
	for _, h := range p.Hooks {
		if !slices.ContainsFunc(out, func(c ContainerRef) bool { return c.ID == h.Source.ID }) {
			out = append(out, h.Source)
		}
	}
	return out
}
