package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// SupportedRestic is the restic major.minor this package is tested with.
const SupportedRestic = "0.19"

// Options configures a Repo. Zero values are sensible defaults, except Host,
// which Backup needs.
type Options struct {
	// Restic is the restic binary; default "restic" from PATH.
	Restic string
	// ResticVersion is the version of the restic binary when the caller
	// already checked that very file (e.g. a worker container started from
	// the image whose restic its sidecar checked): Open then runs no
	// `restic version`. It must still be a supported version.
	ResticVersion string
	// Env holds the credentials restic needs, kept in memory only:
	// RESTIC_PASSWORD (or RESTIC_PASSWORD_FILE), AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, ...
	Env map[string]string
	// Host is the stable --host of new snapshots (not a container id, or every
	// run re-reads everything because restic finds no parent snapshot).
	Host string
	// Tags are added to every snapshot.
	Tags []string
	// Owner names the locks this Repo's restic processes take: restic
	// records it as the lock's user name (it runs with USER=Owner; this
	// works where restic cannot look the user up, as in the platback/sidecar
	// image). RemoveLocksOf(Owner) later removes exactly the locks such a
	// process left when it was killed.
	Owner string
	// CacheDir is restic's cache directory; default restic's own. Open
	// also keeps there which restic binary file it checked (`restic
	// version` runs once per file, not once per process), and EnsureRepo
	// its local init lock.
	CacheDir string
	// CreateBucket allows EnsureRepo to create a missing S3 bucket.
	CreateBucket bool
	// CACertFile and InsecureTLS configure TLS to an https S3 endpoint, for
	// restic and the bucket check alike.
	CACertFile  string
	InsecureTLS bool
	// Timeouts bound each kind of restic call.
	Timeouts Timeouts
	// RetryLock is how long a locking command waits for a lock held by
	// someone else (restic --retry-lock); default 5m.
	RetryLock time.Duration
	// KillAfter is how long restic gets to stop after SIGINT before it is
	// killed; default 30s.
	KillAfter time.Duration
	// ProgressEvery is how often backup progress is logged; default 30s.
	ProgressEvery time.Duration
	// PassEnv names variables of this process's environment that restic
	// (and a BackupStream producer it starts) may see, besides PATH, HOME,
	// TMPDIR, TZ, the TLS and proxy variables, e.g. DOCKER_HOST.
	PassEnv []string
	// Logger receives progress and warnings; default slog.Default().
	Logger *slog.Logger
}

// Timeouts are the deadlines of restic calls. Zero means the default.
type Timeouts struct {
	Open     time.Duration // version, cat config, bucket checks; default 2m
	Init     time.Duration // exclusive init, including waiting for another initialiser; default 10m
	Backup   time.Duration // default 12h
	Forget   time.Duration // forget --prune; default 6h
	Check    time.Duration // default 12h
	Restore  time.Duration // restore and dump; default 12h
	Snapshot time.Duration // snapshots, unlock; default 5m
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Open, 2*time.Minute)
	def(&t.Init, 10*time.Minute)
	def(&t.Backup, 12*time.Hour)
	def(&t.Forget, 6*time.Hour)
	def(&t.Check, 12*time.Hour)
	def(&t.Restore, 12*time.Hour)
	def(&t.Snapshot, 5*time.Minute)
	return t
}

// Repo is a restic repository driven through the restic binary.
type Repo struct {
	url    string
	loc    Location
	opts   Options
	bin    string
	log    *slog.Logger
	redact redactor
	// Version is the restic version found by Open, e.g. "0.19.1".
	Version string
}

// Open checks the repository URL and the restic binary (which must be
// restic 0.19.x; `restic version` runs once per binary file in a process)
// and returns a Repo. It does not touch the repository: call EnsureRepo for
// that.
func Open(ctx context.Context, repoURL string, opts Options) (*Repo, error) {
	loc, err := ParseLocation(repoURL)
	if err != nil {
		return nil, err
	}
	if opts.Restic == "" {
		opts.Restic = "restic"
	}
	bin, err := exec.LookPath(opts.Restic)
	if err != nil {
		return nil, fmt.Errorf("restic binary %q not found: %w; install restic %s or set its path", opts.Restic, err, SupportedRestic)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RetryLock == 0 {
		opts.RetryLock = 5 * time.Minute
	}
	if opts.KillAfter <= 0 {
		opts.KillAfter = 30 * time.Second
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 30 * time.Second
	}
	opts.Timeouts = opts.Timeouts.withDefaults()
	env := make(map[string]string, len(opts.Env))
	for k, v := range opts.Env {
		env[k] = v
	}
	opts.Env = env
	if err := checkTags(opts.Tags); err != nil {
		return nil, err
	}
	if env["RESTIC_PASSWORD"] == "" && env["RESTIC_PASSWORD_FILE"] == "" && env["RESTIC_PASSWORD_COMMAND"] == "" {
		return nil, fmt.Errorf("no repository password: set RESTIC_PASSWORD (or RESTIC_PASSWORD_FILE) in Options.Env")
	}
	r := &Repo{url: repoURL, loc: loc, opts: opts, bin: bin, log: opts.Logger, redact: newRedactor(env)}
	if opts.ResticVersion != "" {
		r.Version, err = checkVersion("restic " + opts.ResticVersion)
	} else {
		r.Version, err = r.resticVersion(ctx)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Location returns the parsed repository URL.
func (r *Repo) Location() Location { return r.loc }

// Binary is the path of the restic binary the Repo runs.
func (r *Repo) Binary() string { return r.bin }

// ResticVersion runs `restic version` with the binary bin (a path or a
// name looked up in PATH), unless this process already did for that file,
// and returns its version when it is one this package supports, else an
// error wrapping ErrUnsupportedRestic.
func ResticVersion(ctx context.Context, bin string) (string, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("restic binary %q not found: %w; install restic %s or set its path", bin, err, SupportedRestic)
	}
	r := &Repo{bin: path, log: slog.New(slog.DiscardHandler), opts: Options{KillAfter: 5 * time.Second, Timeouts: Timeouts{}.withDefaults()}}
	return r.resticVersion(ctx)
}

var versionRE = regexp.MustCompile(`restic (\d+)\.(\d+)\.(\d+)`)

// checkedVersions holds the supported versions found by `restic version`,
// by binary file: a process asks each binary once (a daemon checks at
// start-up and opens a Repo at every run), and again only when the file
// changed.
var checkedVersions sync.Map // binaryFile → string

// binaryFile is what identifies a binary's content cheaply.
type binaryFile struct {
	path    string
	size    int64
	modTime time.Time
}

// resticVersion returns the version of r.bin, running `restic version`
// unless this process already checked the same file.
func (r *Repo) resticVersion(ctx context.Context) (string, error) {
	st, err := os.Stat(r.bin)
	if err != nil {
		return r.runVersion(ctx)
	}
	key := binaryFile{path: r.bin, size: st.Size(), modTime: st.ModTime()}
	if v, ok := checkedVersions.Load(key); ok {
		// Checked before, maybe by an Open without this cache directory (a
		// daemon's start-up): make sure the processes sharing it know.
		r.keepVersion(key, v.(string))
		return v.(string), nil
	}
	if v, ok := r.cachedVersion(key); ok {
		checkedVersions.Store(key, v)
		keptVersions.Store(keptVersion{key, r.opts.CacheDir}, true)
		return v, nil
	}
	v, err := r.runVersion(ctx)
	if err == nil {
		checkedVersions.Store(key, v)
		r.keepVersion(key, v)
	}
	return v, err
}

// keptVersions holds the cache directories this process found or wrote a
// binary file's version in, so that a daemon reads versionFile once, not
// at every run.
var keptVersions sync.Map // keptVersion → true

type keptVersion struct {
	file binaryFile
	dir  string
}

// keepVersion makes sure versionFile in the cache directory holds v for
// key.
func (r *Repo) keepVersion(key binaryFile, v string) {
	if r.opts.CacheDir == "" {
		return
	}
	k := keptVersion{key, r.opts.CacheDir}
	if _, ok := keptVersions.Load(k); ok {
		return
	}
	if _, ok := r.cachedVersion(key); !ok {
		if !r.cacheVersion(key, v) {
			return
		}
	}
	keptVersions.Store(k, true)
}

// versionFile is where Options.CacheDir remembers the last binary file
// `restic version` checked, so that short-lived processes sharing the
// cache (each `sidecar run-once`) do not start restic to ask again.
const versionFile = "platback-restic-version.json"

type cachedVersion struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	ModTimeNS int64  `json:"mod_time_ns"`
	Version   string `json:"version"`
}

// cachedVersion is the version versionFile holds for key, if any (and
// still a supported one).
func (r *Repo) cachedVersion(key binaryFile) (string, bool) {
	if r.opts.CacheDir == "" {
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(r.opts.CacheDir, versionFile))
	if err != nil {
		return "", false
	}
	var c cachedVersion
	if json.Unmarshal(b, &c) != nil || c.Path != key.path || c.Size != key.size || c.ModTimeNS != key.modTime.UnixNano() {
		return "", false
	}
	v, err := checkVersion("restic " + c.Version)
	return v, err == nil
}

// cacheVersion writes versionFile atomically and reports whether it did
// (a failure only costs a `restic version` next time).
func (r *Repo) cacheVersion(key binaryFile, v string) bool {
	b, _ := json.Marshal(cachedVersion{Path: key.path, Size: key.size, ModTimeNS: key.modTime.UnixNano(), Version: v})
	tmp, err := os.CreateTemp(r.opts.CacheDir, versionFile+".*")
	if err != nil {
		r.log.Debug("could not remember the restic version", "err", err)
		return false
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Rename(tmp.Name(), filepath.Join(r.opts.CacheDir, versionFile))); err != nil {
		_ = os.Remove(tmp.Name())
		r.log.Debug("could not remember the restic version", "err", err)
		return false
	}
	return true
}

func (r *Repo) runVersion(ctx context.Context) (string, error) {
	var out []byte
	err := r.run(ctx, invocation{command: "version", timeout: r.opts.Timeouts.Open,
		onLine: func(b []byte) { out = append(out, b...) }})
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.bin, err)
	}
	return checkVersion(string(out))
}

// checkVersion accepts the output of `restic version` when it is SupportedRestic.x.
func checkVersion(out string) (string, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%w: cannot read a version from %q; use restic %s.x", ErrUnsupportedRestic, out, SupportedRestic)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if fmt.Sprintf("%d.%d", major, minor) != SupportedRestic {
		return "", fmt.Errorf("%w: found restic %s.%s.%s, platback is tested with restic %s.x; install that version", ErrUnsupportedRestic, m[1], m[2], m[3], SupportedRestic)
	}
	return m[1] + "." + m[2] + "." + m[3], nil
}

// discard is an onLine that ignores output.
func discard([]byte) {}
