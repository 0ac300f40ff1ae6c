package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/attempts"
)

// mailbox is a real SMTP server (emersion/go-smtp) on 127.0.0.1 that
// accepts user "backup" with password "SECRETPASS" (PLAIN) and keeps the
// mails it got.
type mailbox struct {
	addr   string
	tls    bool // STARTTLS offered, or implicit TLS
	mu     sync.Mutex
	mails  []receivedMail
	authed []bool
}

type receivedMail struct {
	from, to, data string
	tls            bool
}

type mailSession struct {
	box    *mailbox
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "backup" || pass != "SECRETPASS" {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.box.mu.Lock()
	defer s.box.mu.Unlock()
	for _, to := range s.to {
		s.box.mails = append(s.box.mails, receivedMail{from: s.from, to: to, data: string(b), tls: isTLS})
	}
	return nil
}

func (s *mailSession) Reset()        { s.from, s.to = "", nil }
func (s *mailSession) Logout() error { return nil }

// startMailbox starts the server: plain (no TLS offered), with STARTTLS,
// or with implicit TLS.
func startMailbox(t *testing.T, mode string) *mailbox {
	t.Helper()
	box := &mailbox{tls: mode != "plain"}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &mailSession{box: box, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0) // clients that fail on purpose
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	switch mode {
	case "starttls":
		srv.TLSConfig = selfSigned(t)
	case "implicit":
		l = tls.NewListener(l, selfSigned(t))
	}
	box.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return box
}

func (b *mailbox) got() []receivedMail {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]receivedMail(nil), b.mails...)
}

// selfSigned is a TLS configuration with a fresh certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// E-mail: shoutrrr's smtp URLs, sent by platback over a real SMTP server:
// one mail per recipient with the title as subject, over STARTTLS when the
// server offers it, over implicit TLS when asked; a wrong password, a
// required STARTTLS the server lacks and a refused certificate fail with
// an error that holds no password.
func TestEmail(t *testing.T) {
	send := func(t *testing.T, raw string) Delivery {
		t.Helper()
		n, err := New([]string{raw}, Options{Policy: attempts.Policy{Retries: -1, Timeout: 10 * time.Second}})
		require.NoError(t, err)
		return n.Notify(context.Background(), Message{Level: LevelError, Title: "platback: backup of stack shop FAILED", Text: "1 of 2 target(s) failed\nFix: <check the dump>"})
	}
	for _, tc := range []struct {
		mode, query string
		wantTLS     bool
	}{
		{mode: "plain", query: "from=backup@shop.example&to=ops@shop.example,oncall@shop.example"},
		{mode: "starttls", query: "from=backup@shop.example&fromname=Shop+backup&to=ops@shop.example&skiptlsverify=yes&requirestarttls=yes", wantTLS: true},
		{mode: "implicit", query: "from=backup@shop.example&to=ops@shop.example&encryption=ImplicitTLS&skiptlsverify=yes&usehtml=yes", wantTLS: true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			box := startMailbox(t, tc.mode)
			raw := "smtp://backup:SECRETPASS@" + box.addr + "/?" + tc.query
			d := send(t, raw)
			require.Equal(t, 1, d.Sent, "%v", d.Errs)
			q, err := url.ParseQuery(tc.query)
			require.NoError(t, err)
			recipients := strings.Split(q.Get("to"), ",")
			mails := box.got()
			require.Len(t, mails, len(recipients), "one mail per recipient")
			for i, m := range mails {
				assert.Equal(t, "backup@shop.example", m.from)
				assert.Equal(t, recipients[i], m.to)
				assert.Equal(t, tc.wantTLS, m.tls)
				assert.Contains(t, m.data, "Subject: platback: backup of stack shop FAILED\r\n")
				assert.Contains(t, m.data, "To: "+recipients[i]+"\r\n")
				assert.Contains(t, m.data, "1 of 2 target(s) failed\r\nFix: <check the dump>")
				if q.Get("fromname") != "" {
					assert.Contains(t, m.data, "From: Shop backup <backup@shop.example>\r\n")
				}
				if q.Get("usehtml") != "" {
					assert.Contains(t, m.data, "multipart/alternative")
					assert.Contains(t, m.data, "<pre>1 of 2 target(s) failed\r\nFix: &lt;check the dump&gt;</pre>")
				}
			}
		})
	}

	t.Run("failures name the cause, never the password", func(t *testing.T) {
		plain := startMailbox(t, "plain")
		starttls := startMailbox(t, "starttls")
		for raw, want := range map[string]string{
			"smtp://backup:WRONGSECRET@" + plain.addr + "/?from=a@b.example&to=c@d.example":                       "authenticate",
			"smtp://backup:SECRETPASS@" + plain.addr + "/?from=a@b.example&to=c@d.example&requirestarttls=yes":    "no STARTTLS",
			"smtp://backup:SECRETPASS@" + starttls.addr + "/?from=a@b.example&to=c@d.example":                     "certificate",
			"smtp://backup:SECRETPASS@" + plain.addr + "/?from=a@b.example&to=c@d.example&encryption=ImplicitTLS": "smtp",
		} {
			d := send(t, raw)
			require.Equal(t, 1, d.Failed, raw)
			require.Len(t, d.Errs, 1)
			assert.Contains(t, d.Errs[0].Error(), want)
			assert.NotContains(t, d.Errs[0].Error(), "SECRETPASS")
			assert.NotContains(t, d.Errs[0].Error(), "WRONGSECRET")
		}
		assert.Empty(t, plain.got())
		assert.Empty(t, starttls.got())
	})

	t.Run("bad URLs are refused at start-up", func(t *testing.T) {
		for raw, want := range map[string]string{
			"smtp://u:SECRETPASS@mail.example:587/?to=c@d.example":                                "no sender: add from=",
			"smtp://u:SECRETPASS@mail.example:587/?from=a@b.example":                              "no recipient: add to=",
			"smtp://u:SECRETPASS@mail.example:587/?from=a@b.example&to=c@d.example&auth=Kerberos": "shoutrrr cannot use this smtp URL",
			"smtp+https://mail.example/?from=a@b.example&to=c@d.example":                          "takes no smtp+ form",
		} {
			_, err := New([]string{raw}, Options{})
			require.Error(t, err, raw)
			assert.Contains(t, err.Error(), want, raw)
			assert.NotContains(t, err.Error(), "SECRETPASS")
		}
	})
}
