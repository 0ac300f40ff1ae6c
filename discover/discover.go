package discover

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/moby/moby/client"
)

// DefaultLabelPrefix is the label prefix stack-back uses; Options.LabelPrefix
// changes it.
const DefaultLabelPrefix = "stack-back."

// Labels docker compose sets on the containers it creates.
const (
	ComposeProjectLabel         = "com.docker.compose.project"
	ComposeServiceLabel         = "com.docker.compose.service"
	ComposeOneoffLabel          = "com.docker.compose.oneoff"
	ComposeContainerNumberLabel = "com.docker.compose.container-number"
	// ComposeDependsOnLabel lists a service's depends_on, comma separated,
	// as service:condition:restart (Compose v2; older v2 releases wrote
	// only the service names, Compose v1 does not set it).
	ComposeDependsOnLabel = "com.docker.compose.depends_on"
)

// WorkerLabel marks containers a platback sidecar starts for its own work;
// discovery never backs them up, whatever their other labels say.
const WorkerLabel = "io.platback.worker"

var (
	// ErrNoProject means the compose project to back up is unknown: the
	// process does not run in a container of a compose project that the
	// Docker engine knows, and no project was named.
	ErrNoProject = errors.New("discover: no compose project to back up")
	// ErrSelfNotFound means the container named by SelfOptions.Container
	// (PLATBACK_CONTAINER) does not exist on the Docker engine.
	ErrSelfNotFound = errors.New("discover: the sidecar's container was not found")
	// ErrInvalidOptions is wrapped by the errors New returns for bad Options.
	ErrInvalidOptions = errors.New("discover: invalid options")
)

// Options configures a Discoverer. The zero value backs up the sidecar's own
// compose project with stack-back's labels.
type Options struct {
	// LabelPrefix is the prefix of the backup labels; default
	// DefaultLabelPrefix ("stack-back."). A missing final dot is added.
	LabelPrefix string
	// Projects, when set, are the compose projects to back up instead of the
	// sidecar's own (an explicit opt-in, each named: there is no "all").
	// Required when running outside a container.
	Projects []string
	// ExcludeBinds leaves bind mounts out: only named and anonymous volumes
	// are backed up.
	ExcludeBinds bool
	// IncludeStopped backs up the volumes of labelled containers that are
	// not running; by default, as in stack-back, only running containers
	// count. Database dumps always need a running container.
	IncludeStopped bool
	// ProjectInPath puts the project name in snapshot paths
	// (/volumes/<project>/<service>/…). It is always on when Projects names
	// more than one project, so two stacks never share a path.
	ProjectInPath bool
	// Self says how to find the sidecar's own container.
	Self SelfOptions
}

// SelfOptions says how the sidecar finds its own container. The zero value
// looks in /proc/self/mountinfo, then at the hostname.
type SelfOptions struct {
	// Project overrides the compose project (PLATBACK_PROJECT). Outside a
	// container it is the only way to name it (or use Options.Projects).
	Project string
	// Container names the sidecar's container by id or name
	// (PLATBACK_CONTAINER) instead of detecting it.
	Container string
	// MountInfoPath is read for /containers/<id>/ paths; default
	// /proc/self/mountinfo. Tests point it elsewhere.
	MountInfoPath string
	// Hostname replaces os.Hostname() in the hostname fallback.
	Hostname string
}

// Environment variables read by SelfFromEnv.
const (
	EnvProject   = "PLATBACK_PROJECT"
	EnvContainer = "PLATBACK_CONTAINER"
)

// SelfFromEnv returns SelfOptions with Project and Container taken from
// PLATBACK_PROJECT and PLATBACK_CONTAINER, using getenv (os.Getenv).
func SelfFromEnv(getenv func(string) string) SelfOptions {
	return SelfOptions{
		Project:   strings.TrimSpace(getenv(EnvProject)),
		Container: strings.TrimSpace(getenv(EnvContainer)),
	}
}

// Discoverer finds the sidecar's compose project and plans its backup. It is
// safe for concurrent use.
type Discoverer struct {
	cli  *client.Client
	opts Options
}

// New returns a Discoverer that asks the Docker engine behind cli. It
// rejects options that could widen the scope by accident (an empty or
// malformed project name).
func New(cli *client.Client, opts Options) (*Discoverer, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil Docker client (use discover.NewClient)", ErrInvalidOptions)
	}
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	return &Discoverer{cli: cli, opts: opts}, nil
}

// StackBackSocket is where stack-back's compose files mount the Docker
// socket (- /var/run/docker.sock:/tmp/docker.sock:ro). NewClient uses it when
// DOCKER_HOST is unset and /var/run/docker.sock does not exist, so a
// stack-back compose file works with only its image line changed.
const StackBackSocket = "/tmp/docker.sock"

// NewClient returns a Docker client configured from the environment
// (DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY),
// else /var/run/docker.sock, else StackBackSocket. Unless
// DOCKER_API_VERSION pins a version, the client negotiates the API version
// with the engine on its first request (down to API 1.40, Docker 19.03).
// Close it when done.
func NewClient() (*client.Client, error) {
	// client.New negotiates by default in moby/moby/client v0.6;
	// WithAPIVersionNegotiation is a deprecated no-op there.
	opts := []client.Opt{client.FromEnv}
	if os.Getenv("DOCKER_HOST") == "" && !isSocket("/var/run/docker.sock") && isSocket(StackBackSocket) {
		opts = append(opts, client.WithHost("unix://"+StackBackSocket))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("discover: docker client: %w", err)
	}
	return cli, nil
}

func isSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().Type() == os.ModeSocket
}

// projectName matches the names docker compose gives projects.
var projectName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

func (o Options) normalize() (Options, error) {
	o.LabelPrefix = strings.TrimSpace(o.LabelPrefix)
	if o.LabelPrefix == "" {
		o.LabelPrefix = DefaultLabelPrefix
	}
	if !strings.HasSuffix(o.LabelPrefix, ".") {
		o.LabelPrefix += "."
	}
	if o.LabelPrefix == "." {
		return o, fmt.Errorf("%w: label prefix %q is empty: use e.g. %q", ErrInvalidOptions, o.LabelPrefix, DefaultLabelPrefix)
	}
	seen := map[string]bool{}
	var projects []string
	for _, p := range o.Projects {
		if !projectName.MatchString(p) {
			return o, fmt.Errorf("%w: %q is not a compose project name (lowercase letters, digits, '-' and '_'); name each project to back up, there is no \"all projects\"", ErrInvalidOptions, p)
		}
		if !seen[p] {
			seen[p] = true
			projects = append(projects, p)
		}
	}
	o.Projects = projects
	if p := o.Self.Project; p != "" && !projectName.MatchString(p) {
		return o, fmt.Errorf("%w: %s=%q is not a compose project name (lowercase letters, digits, '-' and '_')", ErrInvalidOptions, EnvProject, p)
	}
	return o, nil
}

// scopeProjects returns the projects a plan covers: Options.Projects when
// set, else the sidecar's own.
func scopeProjects(o Options, self Identity) []string {
	if len(o.Projects) > 0 {
		return o.Projects
	}
	if self.Project != "" {
		return []string{self.Project}
	}
	return nil
}
