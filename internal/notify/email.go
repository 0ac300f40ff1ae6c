package notify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"net"
	"net/smtp"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	shoutrrrsmtp "github.com/nicholas-fedor/shoutrrr/pkg/services/email/smtp"
)

// email sends to shoutrrr's smtp URLs
// (smtp://user:pass@host:587/?from=a@example.com&to=b@example.com,c@example.com),
// read by shoutrrr's smtp configuration and sent as its service sends
// them, with Go's net/smtp: implicit TLS (encryption=ImplicitTLS, or port
// 465 with the default Auto), else STARTTLS when the server offers it
// (required with requirestarttls=yes, off with usestarttls=no); auth Plain
// (the default with a user), CRAMMD5, OAuth2 or None; one mail per
// recipient, the message's title as the subject (else subject=).
type email struct {
	cfg *shoutrrrsmtp.Config
}

func newEmail(u *url.URL) (*email, error) {
	svc := &shoutrrrsmtp.Service{}
	noSender := errors.New("smtp: no sender: add from=address to the URL")
	noRecipient := errors.New("smtp: no recipient: add to=address[,address] to the URL")
	err := svc.Initialize(u, nil)
	switch {
	case errors.Is(err, shoutrrrsmtp.ErrFromAddressMissing):
		return nil, noSender
	case errors.Is(err, shoutrrrsmtp.ErrToAddressMissing):
		return nil, noRecipient
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errServiceInitialize, err)
	}
	cfg := svc.Config
	switch {
	case cfg.Host == "":
		return nil, errors.New("smtp: no server host: write smtp://[user:password@]host[:port]/?from=…&to=…")
	case cfg.FromAddress == "":
		return nil, noSender
	case len(cfg.ToAddresses) == 0:
		return nil, noRecipient
	case cfg.Auth == shoutrrrsmtp.AuthTypes.Unknown:
		return nil, errors.New("smtp: unknown auth: use auth=None, Plain, CRAMMD5 or OAuth2")
	}
	return &email{cfg: cfg}, nil
}

func (e *email) implicitTLS() bool {
	switch e.cfg.Encryption {
	case shoutrrrsmtp.EncMethods.ImplicitTLS:
		return true
	case shoutrrrsmtp.EncMethods.Auto:
		return e.cfg.Port == shoutrrrsmtp.ImplicitTLSPort
	}
	return false
}

func (e *email) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: e.cfg.Host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: e.cfg.SkipTLSVerify} //nolint:gosec // the URL's skiptlsverify=yes
}

func (e *email) send(ctx context.Context, m Message, timeout time.Duration) error {
	cfg := e.cfg
	if cfg.Timeout > 0 && cfg.Timeout < timeout {
		timeout = cfg.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	var conn net.Conn
	var err error
	if e.implicitTLS() {
		conn, err = (&tls.Dialer{Config: e.tlsConfig()}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("smtp: connect to %s: %w", addr, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	c, err := smtp.NewClient(conn, cfg.Host)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	defer c.Close()
	clientHost := cfg.ClientHost
	if clientHost == "auto" {
		if clientHost, err = os.Hostname(); err != nil {
			clientHost = "localhost"
		}
	}
	if err := c.Hello(clientHost); err != nil {
		return fmt.Errorf("smtp: hello: %w", err)
	}
	if cfg.UseStartTLS && !e.implicitTLS() {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(e.tlsConfig()); err != nil {
				return fmt.Errorf("smtp: starttls: %w", err)
			}
		} else if cfg.RequireStartTLS {
			return errors.New("smtp: the server offers no STARTTLS and the URL requires it (requirestarttls=yes)")
		}
	}
	var auth smtp.Auth
	switch cfg.Auth {
	case shoutrrrsmtp.AuthTypes.Plain:
		auth = smtp.PlainAuth("", cfg.Username, cfg.Password, cfg.Host)
	case shoutrrrsmtp.AuthTypes.CRAMMD5:
		auth = smtp.CRAMMD5Auth(cfg.Username, cfg.Password)
	case shoutrrrsmtp.AuthTypes.OAuth2:
		auth = shoutrrrsmtp.OAuth2Auth(cfg.Username, cfg.Password)
	}
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return fmt.Errorf("smtp: authenticate as %q: %w", cfg.Username, err)
		}
	}
	subject := cfg.Subject
	if m.Title != "" {
		subject = m.Title
	}
	var errs []error
	for _, to := range cfg.ToAddresses {
		if err := e.mail(c, to, subject, m.Text); err != nil {
			errs = append(errs, fmt.Errorf("smtp: to %s: %w", to, err))
		}
	}
	if err := c.Quit(); err != nil && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("smtp: quit: %w", err))
	}
	return errors.Join(errs...)
}

// mail sends one mail to one recipient over c.
func (e *email) mail(c *smtp.Client, to, subject, text string) error {
	if err := c.Mail(e.cfg.FromAddress); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	from := "<" + e.cfg.FromAddress + ">"
	if e.cfg.FromName != "" {
		from = e.cfg.FromName + " " + from
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\n",
		from, to, headerValue(subject), time.Now().Format(time.RFC1123Z))
	const plain = `text/plain; charset="UTF-8"`
	if e.cfg.UseHTML {
		var r [16]byte
		_, _ = rand.Read(r[:])
		boundary := hex.EncodeToString(r[:])
		fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%s\r\n\r\n", boundary)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s\r\n\r\n%s\r\n", boundary, plain, text)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/html; charset=\"UTF-8\"\r\n\r\n<pre>%s</pre>\r\n--%s--\r\n", boundary, html.EscapeString(text), boundary)
	} else {
		fmt.Fprintf(&b, "Content-Type: %s\r\n\r\n%s\r\n", plain, text)
	}
	if _, err := w.Write([]byte(b.String())); err != nil {
		return err
	}
	return w.Close()
}

// headerValue keeps a header on one line.
func headerValue(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
