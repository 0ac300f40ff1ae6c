// Package dbimage provides local PostgreSQL 15 and MariaDB 10.11 images for
// end-to-end tests on a machine that cannot pull images: it builds a Debian
// bookworm root filesystem with mmdebstrap (installing mmdebstrap with
// apt-get when it is missing), imports it through the engine's API and tags
// two images whose entrypoint reads POSTGRES_* and MARIADB_*/MYSQL_*
// variables (and their _FILE variants) as the official postgres and mariadb
// images do.
//
// # Images and their lifetime
//
// Ensure makes sure these exist, tagged by hashes of the recipe (package
// list, mmdebstrap options, the files under rootfs/, the image settings and
// Version):
//
//	platback-test/dbbase:<base hash>  the imported root filesystem (one layer)
//	platback-test/postgres:<hash>     dbbase + CMD ["postgres"], port 5432
//	platback-test/mariadb:<hash>      dbbase + CMD ["mariadbd"], port 3306
//
// Both engines share one root filesystem and so one layer (about 395 MB):
// one mmdebstrap run and one import instead of two, and half the disk. When
// the tags exist, Ensure returns at once (milliseconds). A cold build
// downloads about 165 MB of Debian packages and takes 3.5 to 6 minutes on a
// busy 2-core machine, so the images are deliberately KEPT
// between test runs (they carry the labels io.platback.test=1 and
// io.platback.dbimage=1, which the test bed's sweep of dead test owners
// leaves alone). After a build, images of older recipes are removed, except
// the newest older one, so two checkouts on neighbouring versions do not
// evict each other on every run (per repository: the current tag and the
// newest other stay). To remove them all, call Remove or run
//
//	docker image ls --filter label=io.platback.dbimage=1 --format '{{.Repository}}:{{.Tag}}' | xargs -r docker image rm
//
// # Containers
//
// The entrypoint initialises an empty data directory on first start:
// postgres in $PGDATA (default /var/lib/postgresql/data) with initdb, a
// database POSTGRES_DB and "host all all all scram-sha-256" (local and
// loopback connections are trusted, as in the official image); mariadb in
// /var/lib/mysql with mariadb-install-db, root@localhost and root@'%' with
// MARIADB_ROOT_PASSWORD, MARIADB_DATABASE and MARIADB_USER/MARIADB_PASSWORD.
// Both run /docker-entrypoint-initdb.d/*.sql, *.sql.gz and *.sh once, listen on
// their unix socket and on all addresses, and run as their own user. psql,
// pg_dump, pg_dumpall, pg_isready, mariadb, mariadb-dump, mariadb-admin and the
// mysql* names are on PATH. WaitReady polls a container until its server
// accepts TCP connections.
package dbimage

import (
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/testbed"
)

// Version is part of the recipe hash: bump it to force a rebuild when
// something the hash does not cover changes.
const Version = "1"

// Labels of the images (the engine images inherit Label from the base).
const (
	// Label marks the images as this package's (value "1").
	Label = "io.platback.dbimage"
	// EngineLabel names the engine of postgres and mariadb images.
	EngineLabel = "io.platback.dbimage.engine"
	// RecipeLabel holds the recipe hash of the image (its tag).
	RecipeLabel = "io.platback.dbimage.recipe"
)

// Repositories of the images; the tag is the recipe hash.
const (
	BaseRepo     = "platback-test/dbbase"
	PostgresRepo = "platback-test/postgres"
	MariaDBRepo  = "platback-test/mariadb"
)

// Engine is a database engine of the images.
type Engine string

// The engines.
const (
	Postgres Engine = "postgres"
	MariaDB  Engine = "mariadb"
)

// Images names the images Ensure made sure of.
type Images struct {
	Postgres string // platback-test/postgres:<hash>
	MariaDB  string // platback-test/mariadb:<hash>
	Base     string // platback-test/dbbase:<base hash>
	// Built reports whether this call built anything (false on the fast
	// path).
	Built bool
}

// Ref returns the image of engine.
func (im Images) Ref(e Engine) string {
	switch e {
	case Postgres:
		return im.Postgres
	case MariaDB:
		return im.MariaDB
	}
	return ""
}

// Options tune Ensure. The zero value is ready to use.
type Options struct {
	// Logger receives the progress of a build (nil: slog.Default()).
	Logger *slog.Logger
}

// The recipe: what goes into the root filesystem and into the hash.
const (
	suite   = "bookworm"
	variant = "essential" // Essential:yes packages plus the ones below; no apt in the image
)

var packages = []string{"postgresql-15", "postgresql-client-15", "mariadb-server", "mariadb-client"}

// dpkgOptions keep documentation and translations out of the image, and
// spare dpkg's fsync of every unpacked file (a throwaway chroot need not
// survive a power cut).
var dpkgOptions = []string{
	"force-unsafe-io",
	"path-exclude=/usr/share/doc/*",
	"path-exclude=/usr/share/man/*",
	"path-exclude=/usr/share/info/*",
	"path-exclude=/usr/share/lintian/*",
	"path-exclude=/usr/share/locale/*",
	"path-include=/usr/share/locale/locale.alias",
}

// rootfsFiles are copied beside customize.sh, which mmdebstrap runs as its
// customize hook.
//
//go:embed rootfs
var rootfsFiles embed.FS

// baseChanges configure the imported root filesystem.
func baseChanges(baseHash string) []string {
	return []string{
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV LANG=C.UTF-8",
		`ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]`,
		fmt.Sprintf("LABEL %s=1 %s=1 %s=%s", testbed.Label, Label, RecipeLabel, baseHash),
	}
}

// engineConfig configures an engine image, committed from a container of
// the base: changes are Dockerfile instructions as docker commit --change
// takes them; the stop signal goes in the container's config (Docker 20.10
// takes no STOPSIGNAL change).
func engineConfig(e Engine, hash string) (changes []string, stopSignal string) {
	changes = []string{fmt.Sprintf("LABEL %s=1 %s=%s %s=%s", testbed.Label, EngineLabel, e, RecipeLabel, hash)}
	switch e {
	case Postgres:
		return append(changes,
			"ENV PLATBACK_DB_ENGINE=postgres PG_MAJOR=15 PGDATA=/var/lib/postgresql/data",
			"VOLUME /var/lib/postgresql/data",
			"EXPOSE 5432",
			`CMD ["postgres"]`,
		), "SIGINT" // fast shutdown, as in the official image
	case MariaDB:
		return append(changes,
			"ENV PLATBACK_DB_ENGINE=mariadb",
			"VOLUME /var/lib/mysql",
			"EXPOSE 3306",
			`CMD ["mariadbd"]`,
		), "SIGTERM"
	}
	return nil, ""
}

// Two hashes, so a change to the engine images' settings does not rebuild
// the root filesystem: baseHash covers what goes into the root filesystem,
// engineHash covers baseHash and the engine settings.
var (
	baseHash = sync.OnceValue(func() string {
		h := sha256.New()
		fmt.Fprintf(h, "version %s\nsuite %s\nvariant %s\npackages %q\ndpkg %q\n", Version, suite, variant, packages, dpkgOptions)
		fmt.Fprintf(h, "changes %q\n", baseChanges(""))
		err := fs.WalkDir(rootfsFiles, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := rootfsFiles.ReadFile(path)
			fmt.Fprintf(h, "file %s %d\n", path, len(b))
			h.Write(b)
			return err
		})
		if err != nil {
			panic(err) // embedded files are always readable
		}
		return hex.EncodeToString(h.Sum(nil))[:12]
	})
	engineHash = sync.OnceValue(func() string {
		h := sha256.New()
		fmt.Fprintf(h, "version %s\nbase %s\n", Version, baseHash())
		for _, e := range []Engine{Postgres, MariaDB} {
			changes, stop := engineConfig(e, "")
			fmt.Fprintf(h, "engine %s %q %s\n", e, changes, stop)
		}
		return hex.EncodeToString(h.Sum(nil))[:12]
	})
)

// Hash returns the recipe hash, the tag of the postgres and mariadb images.
func Hash() string { return engineHash() }

func imagesFor(base, engine string) Images {
	return Images{
		Postgres: PostgresRepo + ":" + engine,
		MariaDB:  MariaDBRepo + ":" + engine,
		Base:     BaseRepo + ":" + base,
	}
}

// Ensure makes sure the postgres and mariadb images of the current recipe
// exist, building them when they do not: at once when they are there,
// minutes on a fresh machine. Processes on one machine build one at a time
// (a lock file in the temp dir); the others wait and then find the images.
func Ensure(ctx context.Context, cli *client.Client, opts Options) (Images, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	imgs := imagesFor(baseHash(), engineHash())
	if ok, err := allExist(ctx, cli, imgs.Postgres, imgs.MariaDB); err != nil || ok {
		return imgs, err
	}

	unlock, err := lockFile(ctx, lockPath())
	if err != nil {
		return imgs, err
	}
	defer unlock()
	// Another process may have built them while this one waited.
	if ok, err := allExist(ctx, cli, imgs.Postgres, imgs.MariaDB); err != nil || ok {
		return imgs, err
	}

	start := time.Now()
	baseOK, err := allExist(ctx, cli, imgs.Base)
	if err != nil {
		return imgs, err
	}
	if !baseOK {
		log.Info("dbimage: building the database root filesystem (minutes; the images are kept for later runs)",
			slog.String("image", imgs.Base))
		if err := buildBase(ctx, cli, imgs.Base, baseHash(), log); err != nil {
			return imgs, fmt.Errorf("dbimage: build %s: %w", imgs.Base, err)
		}
	}
	for _, e := range []Engine{Postgres, MariaDB} {
		if ok, err := allExist(ctx, cli, imgs.Ref(e)); err != nil {
			return imgs, err
		} else if ok {
			continue
		}
		if err := buildEngine(ctx, cli, e, imgs.Base, imgs.Ref(e), engineHash()); err != nil {
			return imgs, fmt.Errorf("dbimage: build %s: %w", imgs.Ref(e), err)
		}
	}
	imgs.Built = true
	log.Info("dbimage: images ready", slog.String("postgres", imgs.Postgres), slog.String("mariadb", imgs.MariaDB),
		slog.Duration("took", time.Since(start).Round(time.Second)))
	if err := pruneOld(ctx, cli, imgs); err != nil {
		log.Warn("dbimage: remove images of older recipes", slog.Any("error", err))
	}
	return imgs, nil
}

// ForTest is Ensure for tests: progress goes to the test log, a build may
// take up to 30 minutes (a busy machine), and an error fails the test.
func ForTest(tb testing.TB, cli *client.Client) Images {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	imgs, err := Ensure(ctx, cli, Options{Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	return imgs
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Remove deletes every image of this package (any recipe), waiting for a
// build in progress. Images still used by a container are left (with the
// bases, then), and named in the error.
func Remove(ctx context.Context, cli *client.Client) error {
	unlock, err := lockFile(ctx, lockPath())
	if err != nil {
		return err
	}
	defer unlock()
	list, err := listImages(ctx, cli)
	if err != nil {
		return err
	}
	return removeRefs(ctx, cli, removalOrder(list), false)
}

// pruneOld removes, in each repository, the tags other than the current
// one except the newest of them, and untagged images of this package;
// images in use by a container stay.
func pruneOld(ctx context.Context, cli *client.Client, current Images) error {
	list, err := listImages(ctx, cli)
	if err != nil {
		return err
	}
	return removeRefs(ctx, cli, pruneTargets(list, current), true)
}

// pruneTargets lists what pruneOld removes, engine images before bases.
func pruneTargets(list []imageInfo, current Images) []string {
	type tagged struct {
		ref     string
		created int64
	}
	byRepo := map[string][]tagged{}
	var ids []string
	for _, img := range list {
		n := 0
		for _, ref := range img.RepoTags {
			i := strings.LastIndexByte(ref, ':')
			if i < 0 || ref == "<none>:<none>" {
				continue
			}
			repo := ref[:i]
			n++
			if ref != current.Base && ref != current.Postgres && ref != current.MariaDB {
				byRepo[repo] = append(byRepo[repo], tagged{ref, img.Created})
			}
		}
		if n == 0 {
			ids = append(ids, img.ID)
		}
	}
	var engines, bases []string
	for _, repo := range []string{PostgresRepo, MariaDBRepo, BaseRepo} {
		old := byRepo[repo]
		slices.SortStableFunc(old, func(a, b tagged) int { return cmp.Compare(b.created, a.created) }) // newest first
		for i, t := range old {
			if i == 0 {
				continue // the newest other recipe stays
			}
			if repo == BaseRepo {
				bases = append(bases, t.ref)
			} else {
				engines = append(engines, t.ref)
			}
		}
	}
	return append(append(engines, bases...), ids...)
}

// removalOrder lists every image of list: tags, engine images first (so
// each removal deletes its image at once), then the IDs of untagged ones.
func removalOrder(list []imageInfo) []string {
	var refs, ids []string
	for _, img := range list {
		tagged := false
		for _, t := range img.RepoTags {
			if t != "<none>:<none>" {
				refs = append(refs, t)
				tagged = true
			}
		}
		if !tagged {
			ids = append(ids, img.ID)
		}
	}
	slices.SortStableFunc(refs, func(a, b string) int {
		return boolInt(strings.HasPrefix(a, BaseRepo+":")) - boolInt(strings.HasPrefix(b, BaseRepo+":"))
	})
	return append(refs, ids...)
}

// removeRefs removes images by tag or ID, in order. Once an engine image
// could not be removed (a container uses it), bases and untagged images are
// left alone: untagging the base of an image that stays would only lose
// the tag. skipInUse keeps quiet about images in use.
func removeRefs(ctx context.Context, cli *client.Client, refs []string, skipInUse bool) error {
	var errs []string
	engineKept := false
	for _, ref := range refs {
		isEngine := strings.HasPrefix(ref, PostgresRepo+":") || strings.HasPrefix(ref, MariaDBRepo+":")
		if engineKept && !isEngine {
			continue
		}
		_, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
		if err == nil || cerrdefs.IsNotFound(err) {
			continue
		}
		if isEngine {
			engineKept = true
		}
		if skipInUse && cerrdefs.IsConflict(err) {
			continue
		}
		errs = append(errs, fmt.Sprintf("%s: %v", ref, err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("dbimage: remove images: %s", strings.Join(errs, "; "))
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

type imageInfo struct {
	ID       string
	RepoTags []string
	Labels   map[string]string
	Created  int64
}

func listImages(ctx context.Context, cli *client.Client) ([]imageInfo, error) {
	res, err := cli.ImageList(ctx, client.ImageListOptions{
		Filters: make(client.Filters).Add("label", Label+"=1"),
	})
	if err != nil {
		return nil, fmt.Errorf("dbimage: list images: %w", err)
	}
	out := make([]imageInfo, 0, len(res.Items))
	for _, s := range res.Items {
		out = append(out, imageInfo{ID: s.ID, RepoTags: s.RepoTags, Labels: s.Labels, Created: s.Created})
	}
	return out, nil
}

// allExist reports whether every ref names a local image.
func allExist(ctx context.Context, cli *client.Client, refs ...string) (bool, error) {
	for _, ref := range refs {
		if _, err := cli.ImageInspect(ctx, ref); cerrdefs.IsNotFound(err) {
			return false, nil
		} else if err != nil {
			return false, fmt.Errorf("dbimage: inspect %s: %w", ref, err)
		}
	}
	return true, nil
}
