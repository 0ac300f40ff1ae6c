// Package dockerproxy is a recording HTTP proxy in front of the Docker
// Engine's unix socket, listening on TCP, for tests that need to know — or
// limit — the Engine API endpoints a program uses (DOCKER_HOST=tcp://…). It
// passes streams (events, logs, wait) and hijacked connections (attach, exec
// start: the 101 protocol switch, half-close included) through unchanged. With
// an allowlist it answers 403 to every endpoint not on it, as a socket proxy
// in production would.
package dockerproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
)

// DefaultSocket is the Engine's socket the proxy forwards to by default.
const DefaultSocket = "/var/run/docker.sock"

// Options configure a Proxy. The zero value records everything, forwards
// to DefaultSocket and listens on a free port of 127.0.0.1.
type Options struct {
	Socket string // the Engine's unix socket; default DefaultSocket
	Listen string // TCP address to listen on; default 127.0.0.1:0
	// Allow, when not nil, is the allowlist: a request for any other
	// endpoint is answered 403 and never reaches the engine (it is still
	// recorded, as denied).
	Allow []Endpoint
}

// Call is one request the proxy saw.
type Call struct {
	Endpoint
	URL    string // as requested, API version and query included
	Status int    // the engine's status (101 for a hijack), 403 when denied, 502 when the engine could not be reached
	Denied bool   // not on the allowlist
}

// ContainerCreate holds the parts of a POST /containers/create request that
// matter to whoever allows it: what runs, with which privileges and mounts.
// Of the environment only the variable names are kept.
type ContainerCreate struct {
	Name        string // the ?name= query
	Image       string
	Entrypoint  []string
	Cmd         []string
	EnvNames    []string
	Labels      map[string]string
	OpenStdin   bool
	Privileged  bool
	NetworkMode string
	CapAdd      []string
	SecurityOpt []string
	Binds       []string
	Mounts      []mount.Mount
}

// Proxy is a running proxy. Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	srv    *http.Server
	allow  map[Endpoint]bool // nil: record only
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	calls   []Call
	creates []ContainerCreate
}

// New starts a proxy; Close stops it.
func New(opts Options) (*Proxy, error) {
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("dockerproxy: listen on %s: %w", opts.Listen, err)
	}
	p := &Proxy{ln: ln, done: make(chan struct{})}
	if opts.Allow != nil {
		p.allow = map[Endpoint]bool{}
		for _, e := range opts.Allow {
			p.allow[e] = true
		}
	}
	socket := opts.Socket
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", "docker", "docker"
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
			MaxIdleConns:    16,
			IdleConnTimeout: 30 * time.Second,
		},
		FlushInterval: -1, // events, logs, wait and attach streams as they come
		ModifyResponse: func(res *http.Response) error {
			p.setStatus(res.Request.Context(), res.StatusCode)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.setStatus(r.Context(), http.StatusBadGateway)
			writeError(w, http.StatusBadGateway, "dockerproxy: "+err.Error())
		},
	}
	// Hijacked connections outlive http.Server.Close: ending the base
	// context ends them (the reverse proxy closes the engine's side).
	base, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.srv = &http.Server{
		Handler:           p.handler(rp),
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// Start is New for a test: it fails the test when the proxy cannot start,
// and closes it at cleanup.
func Start(tb testing.TB, opts Options) *Proxy {
	tb.Helper()
	p, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// Addr is the proxy's TCP address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// DockerHost is the DOCKER_HOST value that reaches the engine through the
// proxy, tcp://host:port.
func (p *Proxy) DockerHost() string { return "tcp://" + p.Addr() }

// Close stops the proxy and ends the connections going through it.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.srv.Close()
	<-p.done
	return err
}

// Calls returns the endpoints requested so far, each once, sorted by path
// then method — denied ones included.
func (p *Proxy) Calls() []Endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	var es []Endpoint
	for _, c := range p.calls {
		es = append(es, c.Endpoint)
	}
	return sortedUnique(es)
}

// Denied returns the endpoints that were answered 403 because the
// allowlist does not hold them, each once, sorted.
func (p *Proxy) Denied() []Endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	var es []Endpoint
	for _, c := range p.calls {
		if c.Denied {
			es = append(es, c.Endpoint)
		}
	}
	return sortedUnique(es)
}

// Log returns every request so far, in the order they arrived.
func (p *Proxy) Log() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// Creates returns the container create requests so far, in order.
func (p *Proxy) Creates() []ContainerCreate {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.creates)
}

// callKey holds the index of a request's Call in its context.
type callKey struct{}

// maxCreateBody bounds what is read of a create request to record it.
const maxCreateBody = 1 << 20

func (p *Proxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := Normalize(r.Method, r.URL.Path)
		denied := p.allow != nil && !p.allow[e]
		p.mu.Lock()
		i := len(p.calls)
		p.calls = append(p.calls, Call{Endpoint: e, URL: r.URL.RequestURI(), Denied: denied})
		p.mu.Unlock()
		if denied {
			p.setStatus(context.WithValue(r.Context(), callKey{}, i), http.StatusForbidden)
			writeError(w, http.StatusForbidden, fmt.Sprintf("dockerproxy: %s is not on the allowlist", e))
			return
		}
		if e == (Endpoint{Method: http.MethodPost, Path: "/containers/create"}) && r.Body != nil {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxCreateBody+1))
			if err != nil || len(body) > maxCreateBody {
				writeError(w, http.StatusBadRequest, "dockerproxy: container create request unreadable or larger than 1 MiB")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			p.recordCreate(r.URL.Query().Get("name"), body)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, i)))
	})
}

func (p *Proxy) setStatus(ctx context.Context, status int) {
	i, ok := ctx.Value(callKey{}).(int)
	if !ok {
		return
	}
	p.mu.Lock()
	p.calls[i].Status = status
	p.mu.Unlock()
}

func (p *Proxy) recordCreate(name string, body []byte) {
	var req container.CreateRequest
	c := ContainerCreate{Name: name}
	if err := json.Unmarshal(body, &req); err != nil {
		c.Image = "(unreadable create request: " + err.Error() + ")"
	}
	if cfg := req.Config; cfg != nil {
		c.Image, c.Entrypoint, c.Cmd, c.Labels, c.OpenStdin = cfg.Image, cfg.Entrypoint, cfg.Cmd, cfg.Labels, cfg.OpenStdin
		for _, kv := range cfg.Env {
			name, _, _ := strings.Cut(kv, "=")
			c.EnvNames = append(c.EnvNames, name)
		}
	}
	if hc := req.HostConfig; hc != nil {
		c.Privileged, c.NetworkMode, c.CapAdd, c.SecurityOpt = hc.Privileged, string(hc.NetworkMode), hc.CapAdd, hc.SecurityOpt
		c.Binds, c.Mounts = hc.Binds, hc.Mounts
	}
	p.mu.Lock()
	p.creates = append(p.creates, c)
	p.mu.Unlock()
}

// writeError answers as the engine does, so Docker clients show message.
func writeError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": message})
}

// ErrNotListed is wrapped by Check's error.
var ErrNotListed = errors.New("endpoints used but not on the allowlist")

// Check returns an error wrapping ErrNotListed that names every endpoint of
// used missing from allow, one a line; nil when allow covers used.
func Check(used, allow []Endpoint) error {
	var missing []string
	for _, e := range sortedUnique(used) {
		if !slices.Contains(allow, e) {
			missing = append(missing, "\n  "+e.String())
		}
	}
	if missing == nil {
		return nil
	}
	return fmt.Errorf("%w:%s", ErrNotListed, strings.Join(missing, ""))
}
