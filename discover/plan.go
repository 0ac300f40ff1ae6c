package discover

import (
	"path"
	"strings"

	"github.com/platback/platback/dbengine"
)

// Kind is what a Target backs up.
type Kind string

// Target kinds. A database kind is named as its dbengine.Engine, which
// dumps and restores it.
const (
	KindVolume   Kind = "volume"
	KindPostgres      = Kind(dbengine.Postgres)
	KindMySQL         = Kind(dbengine.MySQL)
	KindMariaDB       = Kind(dbengine.MariaDB)
)

// Plan is what one backup run will do, as plain data. It holds no secret:
// database targets name the environment variables that hold credentials,
// never their values. encoding/json renders it; WriteTable prints it for
// people.
type Plan struct {
	// Projects are the compose projects the plan covers.
	Projects []string `json:"projects"`
	// Self is the sidecar's own container, as found by Self.
	Self Identity `json:"self"`
	// Targets are backed up in this order (volumes, then databases, each
	// sorted by service and path).
	Targets []Target `json:"targets"`
	// StopDuringBackup are the running containers labelled
	// volumes.stop-during-backup, stopped while volumes are backed up and
	// restarted after.
	StopDuringBackup []ContainerRef `json:"stop_during_backup,omitempty"`
	// Hooks are the commands run in containers around the backup of the
	// containers that carry their labels (see Hook), grouped by that
	// container in plan order, each group in stage then number order.
	Hooks []Hook `json:"hooks,omitempty"`
	// Skipped says, for each container or mount seen and not backed up, why.
	Skipped []Skip `json:"skipped,omitempty"`
	// Warnings are label values that were not understood and other things
	// the user should fix.
	Warnings []Warning `json:"warnings,omitempty"`
}

// Identity is the sidecar's own container and compose project.
type Identity struct {
	// ContainerID is empty when running outside a container (the project
	// was named explicitly).
	ContainerID   string `json:"container_id,omitempty"`
	ContainerName string `json:"container_name,omitempty"`
	Project       string `json:"project,omitempty"`
	// FoundBy says how the container was found: "mountinfo", "hostname",
	// EnvContainer, or "" when there is none.
	FoundBy string `json:"found_by,omitempty"`
	// ProjectFrom is "label" (com.docker.compose.project) or EnvProject.
	ProjectFrom string `json:"project_from,omitempty"`
}

// ContainerRef names a container.
type ContainerRef struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Project string `json:"project,omitempty"`
	Service string `json:"service,omitempty"`
	// DependsOn are the services of the same project this container's
	// service depends on (ComposeDependsOnLabel), sorted; see StartOrder.
	DependsOn []string `json:"depends_on,omitempty"`
}

// Target is one thing to back up: a volume or bind mount, or a database dump.
type Target struct {
	Kind      Kind         `json:"kind"`
	Project   string       `json:"project"`
	Service   string       `json:"service"`
	Container ContainerRef `json:"container"`
	// Source is a short human description: the volume name or host path,
	// or the database engine and container.
	Source string `json:"source"`
	// Path is the path the data gets in the snapshot:
	// /volumes/<service>/<destination> or
	// /databases/<service>/all_databases.sql (with the project after
	// /volumes or /databases when Options.ProjectInPath). It is stable
	// across runs.
	Path string `json:"path"`
	// Tags for the snapshot: project=…, service=…, kind=….
	Tags     []string        `json:"tags"`
	Volume   *VolumeTarget   `json:"volume,omitempty"`
	Database *DatabaseTarget `json:"database,omitempty"`
}

// VolumeTarget is the mount a volume Target backs up.
type VolumeTarget struct {
	// Type is "volume" or "bind".
	Type string `json:"type"`
	// Name is the volume name (named and anonymous volumes).
	Name string `json:"name,omitempty"`
	// Source is the path on the Docker host.
	Source string `json:"source"`
	// Destination is where the owning container mounts it.
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"read_only,omitempty"`
	// SharedWith lists the other containers of the plan that mount the same
	// volume or host path: it is backed up once, here.
	SharedWith []MountUser `json:"shared_with,omitempty"`
	// Stop lists the containers labelled stop-during-backup that mount it.
	Stop []ContainerRef `json:"stop,omitempty"`
}

// MountUser is a container mounting a shared volume.
type MountUser struct {
	Container   ContainerRef `json:"container"`
	Destination string       `json:"destination"`
}

// DatabaseTarget is the database server a dump Target reads: the dump holds
// all its databases (and, for postgres, its roles). Package dbengine dumps
// and restores it: dbengine.Database{Engine: dbengine.Engine(Engine),
// ContainerID: t.Container.ID, ContainerName: t.Container.Name}.
type DatabaseTarget struct {
	Engine Kind `json:"engine"`
	// CredentialEnv names the container's environment variables that hold
	// credentials (plain or *_FILE); their values are read at dump time
	// (dbengine.ReadLogin) and never stored in the plan.
	CredentialEnv []string `json:"credential_env,omitempty"`
}

// Skip says why a container, or one of its mounts, is not backed up.
type Skip struct {
	Container ContainerRef `json:"container"`
	// Mount is the destination of the skipped mount; empty when the whole
	// container is skipped.
	Mount  string `json:"mount,omitempty"`
	Reason string `json:"reason"`
}

// Warning is something the user should fix: a label value that is not
// understood, a label that has no effect, an empty plan.
type Warning struct {
	Container string `json:"container,omitempty"`
	Label     string `json:"label,omitempty"`
	Value     string `json:"value,omitempty"`
	Message   string `json:"message"`
}

// String formats a warning on one line.
func (w Warning) String() string {
	s := ""
	if w.Container != "" {
		s = "container " + w.Container + ": "
	}
	if w.Label != "" {
		s += "label " + w.Label + "=" + quote(w.Value) + ": "
	}
	return s + w.Message
}

// Empty reports whether the plan backs up nothing.
func (p Plan) Empty() bool { return len(p.Targets) == 0 }

// FindTarget returns the target with snapshot path snapshotPath. A database
// dump path /databases/…/<name>.sql that no target has falls back to the
// dump target in the same directory: older versions named postgres dumps
// after POSTGRES_DB (/databases/db/appdb.sql), now all_databases.sql.
func (p Plan) FindTarget(snapshotPath string) (Target, bool) {
	for _, t := range p.Targets {
		if t.Path == snapshotPath {
			return t, true
		}
	}
	clean := path.Clean(snapshotPath)
	if !strings.HasPrefix(clean, "/databases/") || !strings.HasSuffix(clean, ".sql") {
		return Target{}, false
	}
	for _, t := range p.Targets {
		if t.Database != nil && path.Dir(t.Path) == path.Dir(clean) {
			return t, true
		}
	}
	return Target{}, false
}
