package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/minio/minio-go/v7"
)

// EnsureResult says what EnsureRepo found and did.
type EnsureResult struct {
	BucketCreated bool // the S3 bucket was missing and was created
	Initialized   bool // the repository was missing and this call initialised it
	// Opened: restic opened the repository with the password (always,
	// unless EnsureOptions.SkipOpen found its config file).
	Opened   bool
	Warnings []string // dangers found on the way (e.g. a lifecycle rule that expires objects)
	// ExpirationRules are the bucket's lifecycle rules that can delete the
	// repository's objects (S3 only): each one destroys the repository.
	ExpirationRules []ExpirationRule
	// LifecycleErr says why the bucket's lifecycle configuration could not
	// be read (it wraps ErrLifecycleUnreadable); the rules are then unknown.
	LifecycleErr error
}

// initLockName is the S3 object (inside the repository prefix) that makes
// init exclusive across hosts; it is removed once init is done.
const initLockName = "platback-init.lock"

// initLockStale is the age after which an init lock whose owner never
// removed it (a crashed initialiser) is taken over.
const initLockStale = 15 * time.Minute

// EnsureRepo makes sure the repository exists and opens with the password.
//
// For S3 it first checks the bucket (restic retries for many minutes on a
// missing bucket), creating it when Options.CreateBucket allows. Then
// `restic cat config` decides: exit 0, ready; exit 10, initialise; exit 12,
// ErrWrongPassword; anything else (access denied, network) is returned and
// the repository is never initialised. Initialisation is exclusive (a local
// file lock plus, for S3, an object written with a conditional put) and
// verified by opening the repository again.
func (r *Repo) EnsureRepo(ctx context.Context) (EnsureResult, error) {
	return r.EnsureRepoWith(ctx, EnsureOptions{})
}

// EnsureOptions adjust EnsureRepoWith.
type EnsureOptions struct {
	// SkipOpen: when the repository's config file is there (for S3 one
	// HEAD request after the bucket check, for a local repository a stat),
	// do not open the repository with restic, which costs a key derivation
	// (by restic's design about half a second of CPU per process). The
	// caller's next restic command opens it anyway and fails with
	// ErrWrongPassword if the password does not fit (OpenError explains it
	// as EnsureRepo would); VerifyPassword checks it on its own. Without a
	// config file, or for other backends, EnsureRepoWith opens the
	// repository as EnsureRepo does, so it still initialises only a
	// repository restic says does not exist.
	SkipOpen bool
	// ChunkerFrom, when not nil, is the repository whose snapshots this one
	// will receive (CopyFrom): a missing repository is initialised with
	// its chunker parameters (`restic init --copy-chunker-params
	// --from-repo`), so copied data deduplicates, as restic's manual
	// advises. The S3 keys of two S3 repositories must be equal, as for
	// CopyFrom.
	ChunkerFrom *Repo
}

// EnsureRepoWith is EnsureRepo adjusted by o.
func (r *Repo) EnsureRepoWith(ctx context.Context, o EnsureOptions) (EnsureResult, error) {
	var res EnsureResult
	var s3 *minio.Client
	if r.loc.Kind == "s3" {
		c, err := r.s3Client()
		if err != nil {
			return res, fmt.Errorf("S3 client for %s: %w", r.loc.Endpoint, err)
		}
		bctx, cancel := context.WithTimeout(ctx, r.opts.Timeouts.Open)
		res.BucketCreated, err = r.ensureBucket(bctx, c)
		if err == nil {
			res.ExpirationRules, res.LifecycleErr = r.expirationRules(bctx, c)
		}
		cancel()
		if err != nil {
			return res, err
		}
		res.Warnings = r.logLifecycle(res.ExpirationRules, res.LifecycleErr)
		s3 = c
	}
	config := r.configFile(ctx, s3)
	if o.SkipOpen && config == configPresent {
		return res, nil
	}
	if config != configAbsent {
		// Only restic can tell a missing repository from one it cannot
		// open; a config file S3 or the file system says is absent needs
		// no restic process to know it.
		err := r.catConfig(ctx)
		if err == nil {
			res.Opened = true
			return res, nil
		}
		if !errors.Is(err, ErrRepoNotFound) {
			return res, r.OpenError(err)
		}
	}
	var err error
	res.Initialized, res.Opened, err = r.initExclusive(ctx, s3, o)
	return res, err
}

// configState is what the storage says of a repository's config file.
type configState int

const (
	configUnknown configState = iota // not asked (another backend), or no clear answer
	configPresent
	configAbsent // a stat's ENOENT, or S3's NoSuchKey
)

// configFile asks the storage, without restic, whether the repository's
// config file exists: a stat for a local repository, a HEAD request for S3
// (s3 is the bucket's client). Any doubt is configUnknown.
func (r *Repo) configFile(ctx context.Context, s3 *minio.Client) configState {
	switch {
	case r.loc.Kind == "local":
		st, err := os.Stat(filepath.Join(r.loc.Path, "config"))
		switch {
		case err == nil && st.Mode().IsRegular():
			return configPresent
		case errors.Is(err, fs.ErrNotExist):
			return configAbsent
		}
	case r.loc.Kind == "s3" && s3 != nil:
		sctx, cancel := context.WithTimeout(ctx, r.opts.Timeouts.Open)
		defer cancel()
		_, err := s3.StatObject(sctx, r.loc.Bucket, r.loc.key("config"), minio.StatObjectOptions{})
		switch {
		case err == nil:
			return configPresent
		case minio.ToErrorResponse(err).Code == "NoSuchKey":
			return configAbsent
		}
	}
	return configUnknown
}

// keyFiles counts the repository's key files without restic (local and S3
// only; ok is false otherwise or on any error).
func (r *Repo) keyFiles(ctx context.Context, s3 *minio.Client) (n int, ok bool) {
	switch {
	case r.loc.Kind == "local":
		entries, err := os.ReadDir(filepath.Join(r.loc.Path, "keys"))
		return len(entries), err == nil
	case r.loc.Kind == "s3" && s3 != nil:
		sctx, cancel := context.WithTimeout(ctx, r.opts.Timeouts.Open)
		defer cancel()
		for obj := range s3.ListObjects(sctx, r.loc.Bucket, minio.ListObjectsOptions{Prefix: r.loc.key("keys/"), Recursive: true}) {
			if obj.Err != nil {
				return 0, false
			}
			n++
		}
		return n, true
	}
	return 0, false
}

// VerifyPassword opens the repository with restic, without a lock, to
// prove it exists and the password fits: nil, or an error as EnsureRepo's
// (ErrWrongPassword, ErrRepoNotFound, ...). It costs a key derivation.
func (r *Repo) VerifyPassword(ctx context.Context) error {
	err := r.run(ctx, invocation{command: "cat", args: []string{"--no-lock", "config"}, json: true,
		timeout: r.opts.Timeouts.Open, onLine: discard})
	if err != nil {
		return r.OpenError(err)
	}
	return nil
}

// logLifecycle logs what the lifecycle check found and returns it as
// warnings: an expiration rule at ERROR level, an unreadable configuration
// at WARN level.
func (r *Repo) logLifecycle(rules []ExpirationRule, err error) []string {
	warnings := lifecycleWarnings(r.loc, rules, err)
	for _, w := range warnings {
		if err != nil {
			r.log.Warn("bucket lifecycle rules unknown", "bucket", r.loc.Bucket, "warning", w)
		} else {
			r.log.Error("REPOSITORY AT RISK", "bucket", r.loc.Bucket, "warning", w)
		}
	}
	return warnings
}

// ProbeResult says what Probe found.
type ProbeResult struct {
	// BucketMissing: the S3 bucket does not exist; Options.CreateBucket
	// allows EnsureRepo to create it (otherwise Probe returns ErrBucketMissing).
	BucketMissing bool
	// RepoMissing: no repository exists at the URL yet; EnsureRepo will
	// initialise it.
	RepoMissing bool
	// ExpirationRules, LifecycleErr and Warnings are as in EnsureResult.
	ExpirationRules []ExpirationRule
	LifecycleErr    error
	Warnings        []string
}

// Probe checks that the repository can be used, without creating or
// writing anything: for S3 the bucket (as EnsureRepo does, but never
// creating it) and its lifecycle rules, then `restic cat config` without a
// lock. It is what a daemon checks at start-up so a wrong password or
// unusable credentials show at once rather than at the first backup.
//
// A missing bucket (when Options.CreateBucket allows creating it) and a
// missing repository are reported in the result, not as errors: EnsureRepo
// creates them. A wrong password is ErrWrongPassword; credentials S3 refuses
// are ErrAccessDenied; an unreachable endpoint is ErrInterrupted after the
// Open timeout or ctx's deadline, whichever comes first.
func (r *Repo) Probe(ctx context.Context) (ProbeResult, error) {
	var res ProbeResult
	if r.loc.Kind == "s3" {
		c, err := r.s3Client()
		if err != nil {
			return res, fmt.Errorf("S3 client for %s: %w", r.loc.Endpoint, err)
		}
		bctx, cancel := context.WithTimeout(ctx, r.opts.Timeouts.Open)
		defer cancel()
		exists, err := c.BucketExists(bctx, r.loc.Bucket)
		switch {
		case err != nil:
			return res, r.bucketError("check", err)
		case !exists && !r.opts.CreateBucket:
			return res, fmt.Errorf("%w: bucket %q on %s: create it (with admin credentials) or allow the sidecar to create it", ErrBucketMissing, r.loc.Bucket, r.loc.Endpoint)
		case !exists:
			// restic would retry for many minutes on a missing bucket.
			res.BucketMissing, res.RepoMissing = true, true
			return res, nil
		}
		res.ExpirationRules, res.LifecycleErr = r.expirationRules(bctx, c)
		res.Warnings = r.logLifecycle(res.ExpirationRules, res.LifecycleErr)
	}
	err := r.run(ctx, invocation{command: "cat", args: []string{"--no-lock", "config"}, json: true,
		timeout: r.opts.Timeouts.Open, onLine: discard})
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, ErrRepoNotFound):
		res.RepoMissing = true
		return res, nil
	}
	return res, r.OpenError(err)
}

// catConfig opens the repository: nil when it exists and the password fits.
func (r *Repo) catConfig(ctx context.Context) error {
	return r.run(ctx, invocation{command: "cat", args: []string{"config"}, json: true,
		timeout: r.opts.Timeouts.Open, onLine: discard})
}

// OpenError explains an error of a restic command that opens the
// repository, as EnsureRepo does: a wrong password (never re-initialise),
// an unreachable endpoint, credentials the bucket refuses (then it also
// matches ErrAccessDenied).
func (r *Repo) OpenError(err error) error {
	hint := ""
	switch {
	case errors.Is(err, ErrWrongPassword):
		hint = "; the repository exists but RESTIC_PASSWORD does not open it: check the password (never re-initialise a repository that holds backups)"
	case errors.Is(err, ErrInterrupted):
		hint = "; is the repository endpoint reachable?"
	case strings.Contains(strings.ToLower(err.Error()), "access denied"):
		hint = "; the credentials are not allowed to use this repository"
		err = errors.Join(err, ErrAccessDenied)
	}
	return fmt.Errorf("open repository %s: %w%s", redactURL(r.url), err, hint)
}

// errRepoAppeared: another process initialised the repository while we waited.
var errRepoAppeared = errors.New("repository appeared")

// initExclusive initialises the repository while holding the init locks,
// and verifies it opens. It reports whether this call initialised it and
// whether a restic process of it opened the repository with the password.
// With o.ChunkerFrom, it takes that repository's chunker parameters.
//
// The checks cost no key derivation where the storage can answer them
// (local and S3): under the locks, a config file that appeared means
// another process initialised the repository (with o.SkipOpen that is
// enough; the caller's next restic command opens it); after init, the
// config file and exactly one key file mean no one else initialised it at
// the same time (an initialiser without these locks, plain restic for
// one, would have added its own key). Any other answer, or another
// backend, asks restic (`cat config`), as it always did.
func (r *Repo) initExclusive(ctx context.Context, s3 *minio.Client, o EnsureOptions) (initialized, opened bool, err error) {
	init := invocation{command: "init", json: true, timeout: r.opts.Timeouts.Init, onLine: discard}
	if o.ChunkerFrom != nil {
		env, secrets, err := r.fromEnv(o.ChunkerFrom)
		if err != nil {
			return false, false, err
		}
		init.args, init.env, init.redact = []string{"--copy-chunker-params"}, env, &secrets
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeouts.Init)
	defer cancel()

	unlock, err := r.localInitLock(ctx)
	if err != nil {
		return false, false, err
	}
	defer unlock()
	if s3 != nil {
		release, err := r.s3InitLock(ctx, s3)
		if errors.Is(err, errRepoAppeared) {
			return false, true, nil
		}
		if err != nil {
			return false, false, err
		}
		defer release()
	}
	// Someone may have finished an init while we waited for the locks.
	switch config := r.configFile(ctx, s3); {
	case config == configPresent && o.SkipOpen:
		return false, false, nil
	case config != configAbsent:
		switch err := r.catConfig(ctx); {
		case err == nil:
			return false, true, nil
		case !errors.Is(err, ErrRepoNotFound):
			return false, false, r.OpenError(err)
		}
	}
	if err := r.run(ctx, init); err != nil {
		return false, false, fmt.Errorf("initialise repository %s: %w", redactURL(r.url), err)
	}
	if keys, ok := r.keyFiles(ctx, s3); !ok || keys != 1 || r.configFile(ctx, s3) != configPresent {
		if err := r.catConfig(ctx); err != nil {
			return true, false, fmt.Errorf("%w: %s: %v", ErrInitRace, redactURL(r.url), err)
		}
	}
	r.log.Info("initialised repository", "repository", redactURL(r.url))
	return true, true, nil
}

// localInitLock serialises initialisers on this host with a file lock.
func (r *Repo) localInitLock(ctx context.Context) (func(), error) {
	var path string
	if r.loc.Kind == "local" {
		// Inside the repository directory: when it is a volume or a bind
		// mount shared by two containers (or two stacks by mistake), its
		// parent is each container's own filesystem and would exclude
		// nobody. restic ignores the extra file.
		if err := os.MkdirAll(r.loc.Path, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", r.loc.Path, err)
		}
		path = filepath.Join(r.loc.Path, ".platback-init.lock")
	} else {
		dir := r.opts.CacheDir
		if dir == "" {
			dir = os.TempDir()
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		sum := sha256.Sum256([]byte(r.url))
		path = filepath.Join(dir, "platback-init-"+hex.EncodeToString(sum[:8])+".lock")
	}
	l := flock.New(path)
	ok, err := l.TryLockContext(ctx, 200*time.Millisecond)
	if err != nil || !ok {
		return nil, fmt.Errorf("lock %s for init: %w", path, errors.Join(err, ctx.Err()))
	}
	return func() { _ = l.Unlock() }, nil
}

// s3InitLock takes the cross-host init lock: an object written only if it
// does not exist yet (If-None-Match: *). While another process holds it, it
// waits until the repository appears (errRepoAppeared), the lock goes away,
// or the lock is stale.
func (r *Repo) s3InitLock(ctx context.Context, c *minio.Client) (func(), error) {
	key := r.loc.key(initLockName)
	host, _ := os.Hostname()
	for {
		body := fmt.Sprintf(`{"host":%q,"pid":%d,"time":%q}`, host, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
		opts := minio.PutObjectOptions{ContentType: "application/json"}
		opts.SetMatchETagExcept("*")
		_, err := c.PutObject(ctx, r.loc.Bucket, key, strings.NewReader(body), int64(len(body)), opts)
		if err == nil {
			return func() {
				rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := c.RemoveObject(rctx, r.loc.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
					r.log.Warn("could not remove the init lock", "bucket", r.loc.Bucket, "object", key, "err", r.redact.String(err.Error()))
				}
			}, nil
		}
		if minio.ToErrorResponse(err).Code != "PreconditionFailed" {
			return nil, r.bucketError("write init lock in", err)
		}
		// Held by someone else.
		if info, err := c.StatObject(ctx, r.loc.Bucket, key, minio.StatObjectOptions{}); err == nil && time.Since(info.LastModified) > initLockStale {
			r.log.Warn("taking over a stale init lock", "bucket", r.loc.Bucket, "object", key, "age", time.Since(info.LastModified).Round(time.Second))
			_ = c.RemoveObject(ctx, r.loc.Bucket, key, minio.RemoveObjectOptions{})
			continue
		}
		if err := r.catConfig(ctx); err == nil {
			return nil, errRepoAppeared
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waited for another process to initialise %s (lock object %s/%s); if none is running, remove that object",
				ErrInterrupted, redactURL(r.url), r.loc.Bucket, key)
		case <-time.After(time.Second):
		}
	}
}
