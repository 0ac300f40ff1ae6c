package backup_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/toolpath"
)

// These examples run restic for real, on local repositories in temporary
// directories, with the pinned restic that scripts/tools.sh installs (make
// test does it). Your program sets Options.Restic to its restic 0.19.x, or
// leaves it empty for "restic" from PATH.
var restic = pinnedRestic()

// pinnedRestic returns the pinned restic. When it is missing it says so on
// stderr and returns "restic", from PATH: when that is no restic 0.19.x
// either, Open fails, the examples print its error instead of their
// expected output and go test reports them as failed, with that error.
func pinnedRestic() string {
	p, err := toolpath.Pinned("restic")
	if err != nil {
		fmt.Fprintf(os.Stderr, "backup examples: %v; trying restic from PATH\n", err)
		return "restic"
	}
	return p
}

// quiet discards the Repo's progress log, which goes to slog.Default()
// unless Options.Logger says otherwise: the examples' output is their own.
var quiet = slog.New(slog.DiscardHandler)

// A whole cycle on a local repository: create it, back up a directory, list
// the snapshots and restore the latest one somewhere else.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "platback-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	_ = os.MkdirAll(filepath.Join(data, "uploads"), 0o755)
	_ = os.WriteFile(filepath.Join(data, "config.json"), []byte(`{"site":"example"}`), 0o644)
	_ = os.WriteFile(filepath.Join(data, "uploads", "logo.svg"), []byte("<svg/>"), 0o644)

	repo, err := backup.Open(ctx, filepath.Join(dir, "repo"), backup.Options{
		Restic:   restic,
		Env:      map[string]string{"RESTIC_PASSWORD": "correct horse battery staple"},
		Host:     "mattermost", // stable, so the next run finds its parent snapshot
		Tags:     []string{"project=mattermost"},
		CacheDir: filepath.Join(dir, "cache"),
		Logger:   quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := repo.EnsureRepo(ctx) // initialises only a repository that does not exist
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("initialised:", res.Initialized)

	sum, err := repo.Backup(ctx, []string{data}, backup.BackupOptions{Tags: []string{"service=web"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("new files:", sum.FilesNew)

	snaps, err := repo.Snapshots(ctx, backup.Filter{Tags: []string{"service=web"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range snaps {
		fmt.Println("snapshot:", s.ID == sum.SnapshotID, s.Hostname, s.Tags)
	}

	target := filepath.Join(dir, "restored")
	rs, err := repo.Restore(ctx, "latest", target, backup.RestoreOptions{
		Filter: backup.Filter{Tags: []string{"service=web"}},
		Verify: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("restored bytes:", rs.BytesRestored)
	// Snapshots keep absolute paths: data comes back as target/<data>.
	_ = filepath.WalkDir(filepath.Join(target, data), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			content, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(filepath.Join(target, data), p)
			fmt.Printf("%s: %s\n", rel, content)
		}
		return err
	})
	// Output:
	// initialised: true
	// new files: 2
	// snapshot: true mattermost [project=mattermost service=web]
	// restored bytes: 24
	// config.json: {"site":"example"}
	// uploads/logo.svg: <svg/>
}

// Retention keeps, per group of snapshots (host, paths, tags), what the
// policy says: here the newest snapshot of each of the last two days.
func ExampleRepo_Forget() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "platback-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	_ = os.MkdirAll(data, 0o755)
	_ = os.WriteFile(filepath.Join(data, "notes.txt"), []byte("remember the milk\n"), 0o644)

	repo, err := backup.Open(ctx, filepath.Join(dir, "repo"), backup.Options{
		Restic:   restic,
		Env:      map[string]string{"RESTIC_PASSWORD": "correct horse battery staple"},
		Host:     "n8n",
		CacheDir: filepath.Join(dir, "cache"),
		Logger:   quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := repo.EnsureRepo(ctx); err != nil {
		fmt.Println(err)
		return
	}
	// Three nightly runs, the last two on the same day (a manual run).
	for _, at := range []string{"2026-01-10 02:00", "2026-01-11 02:00", "2026-01-11 14:30"} {
		t, _ := time.Parse("2006-01-02 15:04", at)
		if _, err := repo.Backup(ctx, []string{data}, backup.BackupOptions{Time: t}); err != nil {
			fmt.Println(err)
			return
		}
	}

	policy := backup.Policy{Daily: 2}
	fmt.Println("policy:", policy)
	res, err := repo.Forget(ctx, policy, backup.ForgetOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("kept %d, removed %d\n", res.Kept, res.Removed)
	for _, g := range res.Groups {
		for _, s := range g.Remove {
			fmt.Println("removed the snapshot of", s.Time.UTC().Format("2006-01-02 15:04"))
		}
	}

	// A policy that would empty a group removes nothing and says so.
	_, err = repo.Forget(ctx, backup.Policy{Tags: []string{"keep-forever"}}, backup.ForgetOptions{})
	fmt.Println(errors.Is(err, backup.ErrPolicyRemovesAll))
	left, _ := repo.Snapshots(ctx, backup.Filter{})
	fmt.Println("snapshots left:", len(left))
	// Output:
	// policy: --keep-daily 2
	// kept 2, removed 1
	// removed the snapshot of 2026-01-11 02:00
	// true
	// snapshots left: 2
}

// A database dump goes straight from its producer into the repository, and
// comes back with Dump. A producer that fails leaves no snapshot.
func ExampleRepo_BackupStream() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "platback-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	repo, err := backup.Open(ctx, filepath.Join(dir, "repo"), backup.Options{
		Restic:   restic,
		Env:      map[string]string{"RESTIC_PASSWORD": "correct horse battery staple"},
		Host:     "shop",
		CacheDir: filepath.Join(dir, "cache"),
		Logger:   quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := repo.EnsureRepo(ctx); err != nil {
		fmt.Println(err)
		return
	}

	// In the sidecar the producer is pg_dumpall run inside the database
	// container; any command writing to its stdout will do.
	dump := []string{"sh", "-c", `echo "CREATE TABLE orders (id int);"`}
	if _, err := repo.BackupStream(ctx, "/databases/db/all_databases.sql", dump, backup.BackupOptions{
		Tags: []string{"service=db"},
	}); err != nil {
		fmt.Println(err)
		return
	}
	if err := repo.Dump(ctx, "latest", "/databases/db/all_databases.sql",
		backup.Filter{Tags: []string{"service=db"}}, os.Stdout); err != nil {
		fmt.Println(err)
		return
	}

	failing := []string{"sh", "-c", `echo "half a dump"; echo "connection refused" >&2; exit 2`}
	_, err = repo.BackupStream(ctx, "/databases/db/all_databases.sql", failing, backup.BackupOptions{
		Tags: []string{"service=db"},
	})
	fmt.Println("failed:", err != nil)
	snaps, _ := repo.Snapshots(ctx, backup.Filter{Tags: []string{"service=db"}})
	fmt.Println("snapshots:", len(snaps))
	// Output:
	// CREATE TABLE orders (id int);
	// failed: true
	// snapshots: 1
}

// Errors are values: test them with errors.Is, and with errors.As for
// restic's exit code and message.
func Example_errors() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "platback-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	open := func(password string) (*backup.Repo, error) {
		return backup.Open(ctx, filepath.Join(dir, "repo"), backup.Options{
			Restic:   restic,
			Env:      map[string]string{"RESTIC_PASSWORD": password},
			Host:     "vault",
			CacheDir: filepath.Join(dir, "cache"),
			Logger:   quiet,
		})
	}
	repo, err := open("correct horse battery staple")
	if err != nil {
		fmt.Println(err)
		return
	}

	// Nothing there yet: reading says so, it does not create anything.
	_, err = repo.Snapshots(ctx, backup.Filter{})
	fmt.Println("not found:", errors.Is(err, backup.ErrRepoNotFound))
	if _, err := repo.EnsureRepo(ctx); err != nil {
		fmt.Println(err)
		return
	}

	// The repository exists now; another password does not open it, and
	// EnsureRepo never initialises over it.
	wrong, err := open("Tr0ub4dor&3")
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = wrong.EnsureRepo(ctx)
	fmt.Println("wrong password:", errors.Is(err, backup.ErrWrongPassword))
	var re *backup.ResticError
	if errors.As(err, &re) {
		fmt.Println("restic", re.Command, "exited with", re.ExitCode)
	}

	_, err = backup.Open(ctx, "s3:https://minio.internal", backup.Options{Restic: restic})
	fmt.Println("bad URL:", errors.Is(err, backup.ErrBadURL))
	// Output:
	// not found: true
	// wrong password: true
	// restic cat exited with 12
	// bad URL: true
}

// ParseLocation reads every form of repository URL restic accepts for local
// and S3 repositories.
func ExampleParseLocation() {
	for _, u := range []string{
		"/srv/restic/mattermost",
		"s3:minio.internal/restic-stackback-mattermost-bucket",
		"s3:http://127.0.0.1:9000/backups/n8n",
	} {
		l, err := backup.ParseLocation(u)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s path=%q endpoint=%q secure=%t bucket=%q prefix=%q\n", l.Kind, l.Path, l.Endpoint, l.Secure, l.Bucket, l.Prefix)
	}
	// Output:
	// local path="/srv/restic/mattermost" endpoint="" secure=false bucket="" prefix=""
	// s3 path="" endpoint="minio.internal" secure=true bucket="restic-stackback-mattermost-bucket" prefix=""
	// s3 path="" endpoint="127.0.0.1:9000" secure=false bucket="backups" prefix="n8n"
}

// RedactURL keeps credentials in a repository URL out of logs.
func ExampleRedactURL() {
	fmt.Println(backup.RedactURL("open s3:https://AKIAEXAMPLE:s3cr3t@minio.internal/bucket: access denied"))
	// Output:
	// open s3:https://***@minio.internal/bucket: access denied
}

// A policy prints as the restic flags it stands for and is checked before
// anything is forgotten.
func ExamplePolicy() {
	fmt.Println(backup.DefaultPolicy())
	fmt.Println(backup.Policy{Daily: 7, Weekly: 4, Monthly: 6})
	fmt.Println(backup.Policy{}.Validate() != nil)
	// Output:
	// --keep-within 30d
	// --keep-daily 7 --keep-weekly 4 --keep-monthly 6
	// true
}

// A second copy: the destination is initialised with the source's chunker
// parameters, then receives the source's snapshots; copying again copies
// only what it does not hold yet. Each repository has its own password.
func ExampleRepo_CopyFrom() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "platback-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	_ = os.MkdirAll(data, 0o755)
	_ = os.WriteFile(filepath.Join(data, "notes.txt"), []byte("remember the milk\n"), 0o644)

	open := func(name, password string) *backup.Repo {
		r, err := backup.Open(ctx, filepath.Join(dir, name), backup.Options{
			Restic:   restic,
			Env:      map[string]string{"RESTIC_PASSWORD": password},
			Host:     "n8n",
			CacheDir: filepath.Join(dir, "cache"),
			Logger:   quiet,
		})
		if err != nil {
			log.Fatal(err)
		}
		return r
	}
	primary, second := open("primary", "correct horse battery staple"), open("second", "another horse entirely")
	if _, err := primary.EnsureRepo(ctx); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := primary.Backup(ctx, []string{data}, backup.BackupOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	res, err := second.EnsureRepoWith(ctx, backup.EnsureOptions{ChunkerFrom: primary})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("second initialised:", res.Initialized)
	for range 2 {
		if err := second.CopyFrom(ctx, primary, backup.CopyOptions{Filter: backup.Filter{Host: "n8n"}}); err != nil {
			fmt.Println(err)
			return
		}
		copied, _ := second.Snapshots(ctx, backup.Filter{})
		fmt.Println("snapshots in the second copy:", len(copied))
	}
	// Output:
	// second initialised: true
	// snapshots in the second copy: 1
	// snapshots in the second copy: 1
}
