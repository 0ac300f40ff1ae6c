package testbed

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// SecretForm is one way a secret value can show up in text.
type SecretForm struct {
	How    string // "plain", "URL-encoded", "base64"…
	Needle string
}

// SecretForms is value as it could appear: itself, URL-encoded (query and
// path), JSON-escaped, hex, and base64 (standard and URL alphabets) at any
// alignment inside a longer encoded text. Forms shorter than 8 characters
// are left out (they would match ordinary text).
func SecretForms(value string) []SecretForm {
	var forms []SecretForm
	add := func(how, needle string) {
		if len(needle) < 8 || slices.ContainsFunc(forms, func(f SecretForm) bool { return f.Needle == needle }) {
			return
		}
		forms = append(forms, SecretForm{how, needle})
	}
	add("plain", value)
	add("URL-encoded", url.QueryEscape(value))
	add("URL-path-encoded", url.PathEscape(value))
	j, _ := json.Marshal(value)
	add("JSON", string(j[1:len(j)-1]))
	add("JSON with escaped slashes", strings.ReplaceAll(string(j[1:len(j)-1]), "/", `\/`))
	add("hex", hex.EncodeToString([]byte(value)))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for k := range 3 {
			// After k bytes of anything, the value's own characters start
			// at the second 4-character group and end with its last full one.
			b := append(make([]byte, k), value...)
			s := enc.EncodeToString(b)
			start, end := 0, len(b)/3*4
			if k > 0 {
				start = 4
			}
			if end-start >= 12 {
				add("base64", s[start:end])
			}
		}
	}
	return forms
}

// FindSecret returns the form in which value appears in text, if it does.
func FindSecret(text, value string) (SecretForm, bool) {
	if strings.Contains(text, value) {
		return SecretForm{"plain", value}, true
	}
	for _, f := range SecretForms(value) {
		if strings.Contains(text, f.Needle) {
			return f, true
		}
	}
	return SecretForm{}, false
}

// AssertNoSecret fails the test when text (the surface named where) holds
// one of the secrets (name → value) in any of its forms. The error names
// the secret and the form, never the value.
func AssertNoSecret(tb testing.TB, where, text string, secrets map[string]string) {
	tb.Helper()
	for name, v := range secrets {
		if f, ok := FindSecret(text, v); ok {
			tb.Errorf("the %s secret appears in the %s (%s form)", name, where, f.How)
		}
	}
}
