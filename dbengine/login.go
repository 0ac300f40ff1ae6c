package dbengine

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/ids"
	"github.com/platback/platback/internal/redact"
)

// ErrNoLogin means a database container's environment holds nothing a dump
// can log in with.
var ErrNoLogin = errors.New("dbengine: no database credentials")

// Login is what a dump or restore logs into a database server with.
// Printing, logging or encoding it never shows the password.
type Login struct {
	User     string
	Password string
	// Database is the database to connect to (postgres).
	Database string
}

// String shows the user and database, not the password.
func (l Login) String() string {
	pw := ""
	if l.Password != "" {
		pw = redact.Marker
	}
	return fmt.Sprintf("user=%q password=%s database=%q", l.User, pw, l.Database)
}

// GoString hides the password from %#v too.
func (l Login) GoString() string { return "dbengine.Login{" + l.String() + "}" }

// LogValue hides the password from log/slog.
func (l Login) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", l.User), slog.String("database", l.Database),
		slog.Bool("password_set", l.Password != ""))
}

// MarshalJSON hides the password from encoding/json.
func (l Login) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		User        string `json:"user"`
		Database    string `json:"database,omitempty"`
		PasswordSet bool   `json:"password_set"`
	}{l.User, l.Database, l.Password != ""})
}

// maxSecretFile bounds what is read from a *_FILE secret.
const maxSecretFile = 64 << 10

// ReadLogin reads db's login from its container's current environment, as
// the official images do: the plain variable or its _FILE variant (read from
// inside the container through the engine's archive API, so the image needs
// no shell). Read it just before use: it is never worth storing. The rules
// are those of ResolveLogin.
func ReadLogin(ctx context.Context, cli Docker, db Database) (Login, error) {
	res, err := cli.ContainerInspect(ctx, db.ContainerID, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return Login{}, fmt.Errorf("dbengine: database container %s (%s) no longer exists: plan again", db.name(), ids.Container(db.ContainerID))
	}
	if err != nil {
		return Login{}, fmt.Errorf("dbengine: inspect container %s: %w", db.ContainerID, err)
	}
	env := map[string]string{}
	if res.Container.Config != nil {
		env = envMap(res.Container.Config.Env)
	}
	readFile := func(p string) (string, error) { return readContainerFile(ctx, cli, db.ContainerID, p) }
	l, err := ResolveLogin(db.Engine, env, readFile)
	if err != nil {
		return Login{}, fmt.Errorf("%w (container %s)", err, db.name())
	}
	return l, nil
}

// envMap turns a container's KEY=VALUE environment into a map.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// ResolveLogin applies the official images' rules to a container's
// environment env; readFile reads the file a *_FILE variable names (a
// trailing newline is dropped). A variable set both plain and as _FILE is
// an error.
//
//   - postgres: POSTGRES_USER (default "postgres"), POSTGRES_PASSWORD,
//     POSTGRES_DB (default the user).
//   - mysql: MYSQL_ROOT_PASSWORD as root, else MYSQL_USER and
//     MYSQL_PASSWORD, else root without a password when
//     MYSQL_ALLOW_EMPTY_PASSWORD is set; else ErrNoLogin.
//   - mariadb: the same with MARIADB_* first, falling back to MYSQL_*
//     (and MARIADB_ALLOW_EMPTY_ROOT_PASSWORD).
func ResolveLogin(engine Engine, env map[string]string, readFile func(path string) (string, error)) (Login, error) {
	get := func(names ...string) (string, bool, error) {
		for _, n := range names {
			v, plain := env[n]
			f, file := env[n+"_FILE"]
			switch {
			case plain && file:
				return "", false, fmt.Errorf("dbengine: both %s and %s_FILE are set: set only one", n, n)
			case plain:
				return v, true, nil
			case file:
				s, err := readFile(f)
				if err != nil {
					return "", false, fmt.Errorf("dbengine: read %s_FILE=%s: %w", n, f, err)
				}
				// Secret files usually end with a newline the image ignores.
				return strings.TrimRight(s, "\r\n"), true, nil
			}
		}
		return "", false, nil
	}

	switch engine {
	case Postgres:
		user, ok, err := get("POSTGRES_USER")
		if err != nil {
			return Login{}, err
		}
		if !ok || user == "" {
			user = "postgres"
		}
		pw, _, err := get("POSTGRES_PASSWORD")
		if err != nil {
			return Login{}, err
		}
		db, ok, err := get("POSTGRES_DB")
		if err != nil {
			return Login{}, err
		}
		if !ok || db == "" {
			db = user
		}
		return Login{User: user, Password: pw, Database: db}, nil

	case MySQL, MariaDB:
		names := func(suffix string) []string {
			if engine == MariaDB {
				return []string{"MARIADB_" + suffix, "MYSQL_" + suffix}
			}
			return []string{"MYSQL_" + suffix}
		}
		root, ok, err := get(names("ROOT_PASSWORD")...)
		if err != nil {
			return Login{}, err
		}
		if ok && root != "" {
			return Login{User: "root", Password: root}, nil
		}
		user, _, err := get(names("USER")...)
		if err != nil {
			return Login{}, err
		}
		pw, _, err := get(names("PASSWORD")...)
		if err != nil {
			return Login{}, err
		}
		if user != "" && pw != "" {
			return Login{User: user, Password: pw}, nil
		}
		empty := names("ALLOW_EMPTY_PASSWORD")
		if engine == MariaDB {
			empty = append([]string{"MARIADB_ALLOW_EMPTY_ROOT_PASSWORD"}, empty...)
		}
		for _, n := range empty {
			// The images take any non-empty value ("yes") as set.
			if env[n] != "" {
				return Login{User: "root"}, nil
			}
		}
		return Login{}, fmt.Errorf("%w: set %s (or %s with %s)", ErrNoLogin,
			names("ROOT_PASSWORD")[0], names("USER")[0], names("PASSWORD")[0])
	}
	return Login{}, fmt.Errorf("dbengine: unknown database engine %q", engine)
}

// readContainerFile reads a small file from a container through the
// archive API, following symlinks a few times.
func readContainerFile(ctx context.Context, cli Docker, id, p string) (string, error) {
	for range 8 {
		res, err := cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: p})
		if err != nil {
			return "", err
		}
		tr := tar.NewReader(res.Content)
		h, err := tr.Next()
		if err != nil {
			res.Content.Close()
			return "", fmt.Errorf("read archive of %s: %w", p, err)
		}
		if h.Typeflag == tar.TypeSymlink {
			res.Content.Close()
			target := h.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			p = target
			continue
		}
		if h.Typeflag != tar.TypeReg {
			res.Content.Close()
			return "", fmt.Errorf("%s is not a regular file", p)
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxSecretFile+1))
		res.Content.Close()
		if err != nil {
			return "", err
		}
		if len(b) > maxSecretFile {
			return "", fmt.Errorf("%s is larger than %d bytes: not a secret file", p, maxSecretFile)
		}
		return string(b), nil
	}
	return "", fmt.Errorf("%s: too many symlinks", p)
}
