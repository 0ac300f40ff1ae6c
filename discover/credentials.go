package discover

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

	"github.com/moby/moby/client"
)

// ErrNoCredentials means a database container's environment holds nothing a
// dump can log in with.
var ErrNoCredentials = errors.New("discover: no database credentials")

// Credentials log a dump into a database. Printing, logging or encoding them
// never shows the password.
type Credentials struct {
	User     string
	Password string
	// Database is the database to connect to (postgres).
	Database string
}

const redacted = "[redacted]"

// String shows the user and database, not the password.
func (c Credentials) String() string {
	pw := ""
	if c.Password != "" {
		pw = redacted
	}
	return fmt.Sprintf("user=%q password=%s database=%q", c.User, pw, c.Database)
}

// GoString hides the password from %#v too.
func (c Credentials) GoString() string { return "discover.Credentials{" + c.String() + "}" }

// LogValue hides the password from log/slog.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", c.User), slog.String("database", c.Database),
		slog.Bool("password_set", c.Password != ""))
}

// MarshalJSON hides the password from encoding/json.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		User        string `json:"user"`
		Database    string `json:"database,omitempty"`
		PasswordSet bool   `json:"password_set"`
	}{c.User, c.Database, c.Password != ""})
}

// maxSecretFile bounds what is read from a *_FILE secret.
const maxSecretFile = 64 << 10

// Credentials reads a database target's credentials at dump time from its
// container's current environment, as the official images do: the plain
// variable or its _FILE variant (read from inside the container through the
// engine's archive API, so the image needs no shell). Postgres: POSTGRES_USER
// (default "postgres"), POSTGRES_PASSWORD, POSTGRES_DB (default the user).
// MySQL: MYSQL_ROOT_PASSWORD as root, else MYSQL_USER/MYSQL_PASSWORD.
// MariaDB: the same with MARIADB_*, falling back to MYSQL_*.
func (d *Discoverer) Credentials(ctx context.Context, t Target) (Credentials, error) {
	if t.Database == nil {
		return Credentials{}, fmt.Errorf("discover: target %s is not a database dump", t.Path)
	}
	c, err := d.inspect(ctx, t.Container.ID)
	if err != nil {
		return Credentials{}, err
	}
	if c == nil {
		return Credentials{}, fmt.Errorf("discover: database container %s (%s) no longer exists: plan again", t.Container.Name, short(t.Container.ID))
	}
	var envList []string
	if c.Config != nil {
		envList = c.Config.Env
	}
	env := Container{Env: envList}.env()
	readFile := func(p string) (string, error) { return d.readContainerFile(ctx, t.Container.ID, p) }
	creds, err := resolveCredentials(t.Database.Engine, env, readFile)
	if err != nil {
		return Credentials{}, fmt.Errorf("%w (container %s)", err, t.Container.Name)
	}
	return creds, nil
}

// resolveCredentials applies the official images' rules to env; readFile
// reads a *_FILE secret.
func resolveCredentials(engine Kind, env map[string]string, readFile func(string) (string, error)) (Credentials, error) {
	get := func(names ...string) (string, bool, error) {
		for _, n := range names {
			v, plain := env[n]
			f, file := env[n+"_FILE"]
			switch {
			case plain && file:
				return "", false, fmt.Errorf("discover: both %s and %s_FILE are set: set only one", n, n)
			case plain:
				return v, true, nil
			case file:
				s, err := readFile(f)
				if err != nil {
					return "", false, fmt.Errorf("discover: read %s_FILE=%s: %w", n, f, err)
				}
				// Secret files usually end with a newline the image ignores.
				return strings.TrimRight(s, "\r\n"), true, nil
			}
		}
		return "", false, nil
	}

	switch engine {
	case KindPostgres:
		user, ok, err := get("POSTGRES_USER")
		if err != nil {
			return Credentials{}, err
		}
		if !ok || user == "" {
			user = "postgres"
		}
		pw, _, err := get("POSTGRES_PASSWORD")
		if err != nil {
			return Credentials{}, err
		}
		db, ok, err := get("POSTGRES_DB")
		if err != nil {
			return Credentials{}, err
		}
		if !ok || db == "" {
			db = user
		}
		return Credentials{User: user, Password: pw, Database: db}, nil

	case KindMySQL, KindMariaDB:
		names := func(suffix string) []string {
			if engine == KindMariaDB {
				return []string{"MARIADB_" + suffix, "MYSQL_" + suffix}
			}
			return []string{"MYSQL_" + suffix}
		}
		root, ok, err := get(names("ROOT_PASSWORD")...)
		if err != nil {
			return Credentials{}, err
		}
		if ok && root != "" {
			return Credentials{User: "root", Password: root}, nil
		}
		user, _, err := get(names("USER")...)
		if err != nil {
			return Credentials{}, err
		}
		pw, _, err := get(names("PASSWORD")...)
		if err != nil {
			return Credentials{}, err
		}
		if user != "" && pw != "" {
			return Credentials{User: user, Password: pw}, nil
		}
		empty := names("ALLOW_EMPTY_PASSWORD")
		if engine == KindMariaDB {
			empty = append([]string{"MARIADB_ALLOW_EMPTY_ROOT_PASSWORD"}, empty...)
		}
		for _, n := range empty {
			// The images take any non-empty value ("yes") as set.
			if env[n] != "" {
				return Credentials{User: "root"}, nil
			}
		}
		return Credentials{}, fmt.Errorf("%w: set %s (or %s with %s)", ErrNoCredentials,
			names("ROOT_PASSWORD")[0], names("USER")[0], names("PASSWORD")[0])
	}
	return Credentials{}, fmt.Errorf("discover: unknown database engine %q", engine)
}

// readContainerFile reads a small file from a container through the
// archive API, following symlinks a few times.
func (d *Discoverer) readContainerFile(ctx context.Context, id, p string) (string, error) {
	for range 8 {
		res, err := d.cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: p})
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
