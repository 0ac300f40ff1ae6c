package doctor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/moby/moby/client"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/schedule"
	"github.com/platback/platback/vaultcreds"
)

// run is one Run: the report so far and what the checks found that later
// checks need (nil or zero when the check that finds it failed).
type run struct {
	o   Options
	rep Report

	dockerOK bool
	self     *discover.Identity
	planned  *discover.Plan
	src      vaultcreds.Source
	creds    *vaultcreds.Credentials
	credsWhy string // why creds is nil
	url      string
	loc      backup.Location
	repo     *backup.Repo
	repoWhy  string // why repo is nil
	s3       s3State
	opens    bool // the repository opens with the password
	tt       *schedule.Timetable
	project  string
}

func (r *run) add(c Check) { r.rep = append(r.rep, c) }

func (r *run) skip(name, why string) { r.add(Check{Name: name, Status: Skip, Detail: why}) }

// step gives one check its deadline.
func (r *run) step(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.o.StepTimeout)
}

func (r *run) close(ctx context.Context) {
	if r.src != nil {
		ctx, cancel := r.step(ctx)
		defer cancel()
		_ = r.src.Close(ctx) // revokes the Vault token
	}
}

const dockerFix = "mount the Docker socket into the sidecar (- /var/run/docker.sock:/var/run/docker.sock:ro) or set DOCKER_HOST (e.g. tcp://socket-proxy:2375 behind a socket proxy)"

func (r *run) docker(ctx context.Context) {
	const name = "docker"
	if r.o.Docker == nil {
		r.add(Check{Name: name, Status: Fail, Detail: "no Docker client", Fix: dockerFix})
		return
	}
	ctx, cancel := r.step(ctx)
	defer cancel()
	// _ping, not /version: a socket proxy's allowlist
	// (examples/socket-proxy) has the endpoints the sidecar uses only.
	v, err := r.o.Docker.Ping(ctx, client.PingOptions{})
	if err != nil {
		r.add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("the Docker engine at %s does not answer: %v", r.o.Docker.DaemonHost(), err), Fix: dockerFix})
		return
	}
	r.dockerOK = true
	r.add(Check{Name: name, Status: Pass, Detail: fmt.Sprintf("Docker Engine API %s (%s) at %s", v.APIVersion, cmpOr(v.OSType, "unknown OS"), r.o.Docker.DaemonHost())})
}

func (r *run) discoverer() (*discover.Discoverer, error) {
	return discover.New(r.o.Docker, r.o.Discover)
}

func (r *run) findProject(ctx context.Context) {
	const name = "project"
	if !r.dockerOK {
		r.skip(name, "needs the Docker engine (check docker)")
		return
	}
	d, err := r.discoverer()
	if err != nil {
		r.add(Check{Name: name, Status: Fail, Detail: err.Error(), Fix: "fix PLATBACK_PROJECT / PLATBACK_PROJECTS / PLATBACK_LABEL_PREFIX"})
		return
	}
	ctx, cancel := r.step(ctx)
	defer cancel()
	self, err := d.Self(ctx)
	if err != nil && !(errors.Is(err, discover.ErrNoProject) && len(r.o.Discover.Projects) > 0) {
		r.add(Check{Name: name, Status: Fail, Detail: err.Error(),
			Fix: "run the sidecar as a service of the compose stack it backs up, or set PLATBACK_PROJECT (outside a container) or PLATBACK_CONTAINER"})
		return
	}
	r.self = &self
	r.project = self.Project
	if len(r.o.Discover.Projects) > 0 {
		r.project = strings.Join(r.o.Discover.Projects, "+")
	}
	detail := fmt.Sprintf("project %s", r.project)
	switch {
	case self.ContainerID != "":
		detail += fmt.Sprintf(" (sidecar container %s, found by %s)", self.ContainerName, self.FoundBy)
	default:
		detail += fmt.Sprintf(" (not in a container; project from %s)", cmpOr(self.ProjectFrom, "PLATBACK_PROJECTS"))
	}
	r.add(Check{Name: name, Status: Pass, Detail: detail})
}

func (r *run) plan(ctx context.Context) {
	const name = "plan"
	if r.self == nil {
		r.skip(name, "needs the sidecar's own project (check project)")
		return
	}
	d, err := r.discoverer()
	if err != nil {
		r.add(Check{Name: name, Status: Fail, Detail: err.Error()})
		return
	}
	ctx, cancel := r.step(ctx)
	defer cancel()
	p, err := d.Plan(ctx)
	if err != nil {
		r.add(Check{Name: name, Status: Fail, Detail: err.Error(), Fix: "see sidecar plan"})
		return
	}
	r.planned = &p
	if p.Empty() {
		r.add(Check{Name: name, Status: Fail,
			Detail: fmt.Sprintf("nothing to back up in project %s: no running container has a backup label (%d skipped)", strings.Join(p.Projects, ", "), len(p.Skipped)),
			Fix:    fmt.Sprintf("label the services to back up, e.g. %svolumes: \"true\" or %spostgres: \"true\", and start them; sidecar plan says why each container is skipped", r.prefix(), r.prefix())})
		return
	}
	volumes, dumps := 0, 0
	for _, t := range p.Targets {
		if t.Kind == discover.KindVolume {
			volumes++
		} else {
			dumps++
		}
	}
	detail := fmt.Sprintf("%d target(s): %d volume(s), %d database dump(s)", len(p.Targets), volumes, dumps)
	if len(p.Warnings) > 0 {
		r.add(Check{Name: name, Status: Warn, Detail: fmt.Sprintf("%s; %d warning(s), the first: %s", detail, len(p.Warnings), p.Warnings[0]),
			Fix: "fix the labels sidecar plan warns about"})
		return
	}
	r.add(Check{Name: name, Status: Pass, Detail: detail})
}

func (r *run) prefix() string {
	if r.o.Discover.LabelPrefix != "" {
		return strings.TrimSuffix(r.o.Discover.LabelPrefix, ".") + "."
	}
	return discover.DefaultLabelPrefix
}

const secretIDFix = "deliver a new secret_id (vault write -f auth/approle/role/<role>/secret-id) into VAULT_SECRET_ID_FILE; check VAULT_ROLE_ID(_FILE) and VAULT_APPROLE_MOUNT"

// credentials checks Vault (reachable, AppRole login, the mapped fields)
// or the plain variables, and keeps the credentials for the S3 and
// repository checks.
func (r *run) credentials(ctx context.Context) {
	vcfg, isVault := r.o.Credentials.Vault()
	if !isVault {
		r.plainCredentials(ctx)
		return
	}
	hctx, cancel := r.step(ctx)
	h, err := vaultcreds.CheckHealth(hctx, vcfg)
	cancel()
	if err != nil {
		r.add(Check{Name: "vault", Status: Fail, Detail: err.Error(), Fix: "check VAULT_ADDR (and VAULT_CACERT for TLS), the network to Vault, and that Vault is unsealed"})
		r.credsWhy = "needs Vault (check vault)"
		r.skip("vault login", r.credsWhy)
		r.skip("vault fields", r.credsWhy)
		return
	}
	standby := ""
	if h.Standby {
		standby = ", standby"
	}
	r.add(Check{Name: "vault", Status: Pass, Detail: fmt.Sprintf("Vault %s at %s: initialised, unsealed%s", h.Version, vcfg.Address, standby)})

	src, err := vaultcreds.NewSource(r.o.Credentials, vaultcreds.WithLogger(r.o.Logger), vaultcreds.WithoutRenewal())
	if err != nil {
		r.add(Check{Name: "vault login", Status: Fail, Detail: err.Error(), Fix: "fix the VAULT_* variables"})
		r.credsWhy = "needs the Vault login (check vault login)"
		r.skip("vault fields", r.credsWhy)
		return
	}
	r.src = src
	fctx, cancel := r.step(ctx)
	creds, err := src.Credentials(fctx)
	cancel()
	var ce *vaultcreds.ConfigError
	loginFailed := err != nil && !errors.Is(err, vaultcreds.ErrPermissionDenied) && !errors.Is(err, vaultcreds.ErrSecretNotFound) &&
		!errors.Is(err, vaultcreds.ErrMissingField) && !(errors.As(err, &ce) && ce.Var == vaultcreds.EnvKVVersion)
	login := fmt.Sprintf("AppRole login at auth/%s accepted", cmpOr(vcfg.AuthMount, vaultcreds.DefaultAuthMount))
	if loginFailed {
		fix := "check VAULT_ADDR and the network to Vault"
		if errors.Is(err, vaultcreds.ErrInvalidSecretID) || errors.Is(err, vaultcreds.ErrInvalidConfig) {
			fix = secretIDFix
		}
		r.add(Check{Name: "vault login", Status: Fail, Detail: err.Error(), Fix: fix})
		r.credsWhy = "needs the Vault login (check vault login)"
		r.skip("vault fields", r.credsWhy)
		return
	}
	r.add(Check{Name: "vault login", Status: Pass, Detail: login})
	if err != nil {
		fix := fmt.Sprintf("write the secret at %s with every field of %s (values are never shown here), or change %s", vcfg.Secret, vcfg.Fields, vaultcreds.EnvFieldMap)
		if errors.Is(err, vaultcreds.ErrPermissionDenied) {
			fix = fmt.Sprintf("grant the AppRole's policy \"read\" on %s (examples/provisioning/vault-policy.hcl)", vcfg.Secret)
		}
		r.add(Check{Name: "vault fields", Status: Fail, Detail: err.Error(), Fix: fix})
		r.credsWhy = "needs the secret's fields (check vault fields)"
		return
	}
	var parts []string
	for _, fm := range vcfg.Fields {
		if _, ok := creds.Lookup(fm.Env); ok {
			parts = append(parts, fm.Field+"="+fm.Env)
		} else {
			parts = append(parts, fm.Field+"="+fm.Env+" (optional, absent)")
		}
	}
	r.add(Check{Name: "vault fields", Status: Pass, Detail: fmt.Sprintf("secret %s: %s (values not shown)", vcfg.Secret, strings.Join(parts, ", "))})
	r.creds = &creds
}

func (r *run) plainCredentials(ctx context.Context) {
	const name = "credentials"
	src, err := vaultcreds.NewSource(r.o.Credentials, vaultcreds.WithLogger(r.o.Logger))
	if err == nil {
		r.src = src
		ctx, cancel := r.step(ctx)
		var creds vaultcreds.Credentials
		creds, err = src.Credentials(ctx)
		cancel()
		if err == nil {
			r.creds = &creds
			r.add(Check{Name: name, Status: Pass, Detail: fmt.Sprintf("no Vault: %s from the environment (values not shown)", strings.Join(creds.Names(), ", "))})
			return
		}
	}
	r.credsWhy = "needs the credentials (check credentials)"
	r.add(Check{Name: name, Status: Fail, Detail: err.Error(),
		Fix: "set RESTIC_PASSWORD(_FILE), AWS_ACCESS_KEY_ID(_FILE) and AWS_SECRET_ACCESS_KEY(_FILE), or configure Vault (VAULT_ADDR, VAULT_ROLE_ID_FILE, VAULT_SECRET_ID_FILE, VAULT_SECRET_PATH)"})
}

// restic opens the repository's Repo (the restic binary and version, no
// repository access yet).
func (r *run) restic(ctx context.Context) {
	const name = "restic"
	r.url = r.o.Repository
	if r.creds != nil && r.url == "" {
		r.url = r.creds.Get("RESTIC_REPOSITORY")
	}
	ctx, cancel := r.step(ctx)
	defer cancel()
	v, err := backup.ResticVersion(ctx, cmpOr(r.o.Restic, "restic"))
	if err != nil {
		r.add(Check{Name: name, Status: Fail, Detail: err.Error(), Fix: "install restic " + backup.SupportedRestic + ".x or set PLATBACK_RESTIC (the image ships it)"})
		r.repoWhy = "needs restic (check restic)"
		return
	}
	r.add(Check{Name: name, Status: Pass, Detail: "restic " + v})
	switch {
	case r.url == "" && r.creds == nil:
		r.repoWhy = r.credsWhy
		return
	case r.url == "":
		r.repoWhy = "no repository: set RESTIC_REPOSITORY, or the Vault secret's field mapped to RESTIC_REPOSITORY"
		return
	}
	loc, err := backup.ParseLocation(r.url)
	if err != nil {
		r.repoWhy = err.Error()
		return
	}
	r.loc = loc
	if r.creds == nil {
		r.repoWhy = r.credsWhy
		return
	}
	env := r.env()
	delete(env, vaultcreds.EnvCopyResticPassword)
	r.repo, err = backup.Open(ctx, r.url, backup.Options{
		Restic: r.o.Restic, Env: env, Host: r.host(), CacheDir: r.o.CacheDir, Logger: r.o.Logger,
		Timeouts: backup.Timeouts{Open: r.o.StepTimeout, Snapshot: r.o.StepTimeout},
	})
	if err != nil {
		r.repoWhy = err.Error()
	}
}

// env is restic's environment from the credentials, as a run builds it:
// no repository URLs, the region of Options.Region unless the credentials
// set one.
func (r *run) env() map[string]string {
	env := r.creds.Env()
	delete(env, vaultcreds.EnvResticRepository)
	delete(env, vaultcreds.EnvCopyRepository)
	if r.o.Region != "" && env["AWS_DEFAULT_REGION"] == "" && env["AWS_REGION"] == "" {
		env["AWS_DEFAULT_REGION"] = r.o.Region
	}
	return env
}

func (r *run) host() string {
	if r.o.Host != "" {
		return r.o.Host
	}
	if r.planned != nil {
		return strings.Join(r.planned.Projects, "+")
	}
	return r.project
}

func (r *run) repository(ctx context.Context) {
	const name = "repository"
	switch {
	case r.repo == nil && r.repoWhy != "" && r.url == "" && r.creds != nil:
		r.add(Check{Name: name, Status: Fail, Detail: r.repoWhy, Fix: "set RESTIC_REPOSITORY, e.g. s3:https://minio.internal/restic-stackback-app-bucket"})
		return
	case r.repo == nil:
		r.skip(name, r.repoWhy)
		return
	case r.loc.Kind == "s3" && !r.s3.bucketExists:
		r.skip(name, "needs the bucket (check s3 bucket)")
		return
	}
	ctx, cancel := r.step(ctx)
	defer cancel()
	err := r.repo.VerifyPassword(ctx)
	switch {
	case err == nil:
		r.opens = true
		r.add(Check{Name: name, Status: Pass, Detail: fmt.Sprintf("%s opens with the password", backup.RedactURL(r.url))})
	case errors.Is(err, backup.ErrRepoNotFound):
		r.add(Check{Name: name, Status: Warn, Detail: fmt.Sprintf("no repository at %s yet: the first run initialises it", backup.RedactURL(r.url)),
			Fix: "back up now (sidecar run-once), or wait for the first scheduled run"})
	case errors.Is(err, backup.ErrWrongPassword):
		r.add(Check{Name: name, Status: Fail, Detail: err.Error(), Fix: "set the password the repository was created with (RESTIC_PASSWORD or the Vault field); never re-initialise a repository that holds backups"})
	default:
		r.add(Check{Name: name, Status: Fail, Detail: err.Error(), Fix: "check the repository URL, the network and the credentials"})
	}
}

// copyRepository checks the second copy's repository (COPY_REPOSITORY):
// it opens with its password (COPY_RESTIC_PASSWORD or its Vault field,
// else the primary's) and the primary's S3 keys, as a run's copy opens it.
func (r *run) copyRepository(ctx context.Context) {
	const name = "second copy"
	url := r.o.CopyRepository
	if url == "" && r.creds != nil {
		url = r.creds.Get(vaultcreds.EnvCopyRepository)
	}
	switch {
	case url == "" && r.creds == nil && r.o.Credentials.UsesVault():
		r.skip(name, "needs the credentials (a Vault field may name COPY_REPOSITORY)")
		return
	case url == "":
		return // no second copy: nothing to report
	case r.creds == nil:
		r.skip(name, r.credsWhy)
		return
	}
	env := r.env()
	if pw := env[vaultcreds.EnvCopyResticPassword]; pw != "" {
		env[vaultcreds.EnvResticPassword] = pw
	}
	delete(env, vaultcreds.EnvCopyResticPassword)
	shown := backup.RedactURL(url)
	ctx, cancel := r.step(ctx)
	defer cancel()
	repo, err := backup.Open(ctx, url, backup.Options{
		Restic: r.o.Restic, Env: env, Host: r.host(), CacheDir: r.o.CacheDir, Logger: r.o.Logger,
		Timeouts: backup.Timeouts{Open: r.o.StepTimeout, Snapshot: r.o.StepTimeout},
	})
	if err == nil && repo.Location().Kind == "s3" {
		// restic retries a missing bucket until its deadline: ask S3 first.
		var c *minio.Client
		if c, err = repo.S3Client(); err == nil {
			var exists bool
			if exists, err = c.BucketExists(ctx, repo.Location().Bucket); err == nil && !exists {
				err = backup.ErrBucketMissing
			}
		}
	}
	if err == nil {
		err = repo.VerifyPassword(ctx)
	}
	switch {
	case err == nil:
		r.add(Check{Name: name, Status: Pass, Detail: fmt.Sprintf("%s opens with its password", shown)})
	case errors.Is(err, backup.ErrBucketMissing) && !r.o.CreateBucket:
		r.add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("the bucket of %s does not exist, and PLATBACK_CREATE_BUCKET=false", shown),
			Fix: "create the bucket, or set PLATBACK_CREATE_BUCKET=true"})
	case errors.Is(err, backup.ErrRepoNotFound), errors.Is(err, backup.ErrBucketMissing):
		r.add(Check{Name: name, Status: Warn, Detail: fmt.Sprintf("no repository at %s yet: the first copy creates it", shown),
			Fix: "back up now (sidecar run-once): the run copies its snapshots there"})
	case errors.Is(err, backup.ErrWrongPassword):
		r.add(Check{Name: name, Status: Fail, Detail: err.Error(), Fix: "set the second repository's password: COPY_RESTIC_PASSWORD or its Vault field (without one, RESTIC_PASSWORD is used)"})
	default:
		r.add(Check{Name: name, Status: Fail, Detail: err.Error(),
			Fix: "check COPY_REPOSITORY, the network to it, and that the primary's S3 keys may use its bucket (restic copies with one key pair)"})
	}
}

func (r *run) schedule() {
	const name = "schedule"
	spec := r.o.Schedule
	if spec.Name == "" || spec.Name == "platback" {
		spec.Name = cmpOr(r.project, spec.Name)
	}
	tt, err := schedule.ParseSpec(spec)
	if err != nil {
		r.add(Check{Name: name, Status: Fail, Detail: err.Error(), Fix: "fix BACKUP_CRON, BACKUP_TZ or BACKUP_STAGGER"})
		return
	}
	r.tt = tt
	now := r.o.Now()
	next := tt.Next(now)
	r.add(Check{Name: name, Status: Pass, Detail: fmt.Sprintf("%s: next run %s (in %s)", tt, next.Format(time.RFC3339), roundDuration(next.Sub(now)))})
}

// snapshots checks each target's newest snapshot and its age against the
// schedule: older than the last scheduled run is a warning, older than the
// two last (as sidecar health with HEALTH_MAX_AGE_FACTOR 2) a failure.
func (r *run) snapshots(ctx context.Context) {
	const name = "snapshots"
	switch {
	case r.planned == nil:
		r.skip(name, "needs the plan (check plan)")
		return
	case r.planned.Empty():
		r.skip(name, "the plan has no target (check plan)")
		return
	case !r.opens:
		r.skip(name, "needs the repository (check repository)")
		return
	}
	ctx, cancel := r.step(ctx)
	defer cancel()
	snaps, err := r.repo.SnapshotsNoLock(ctx, backup.Filter{Host: r.host()})
	if err != nil {
		r.add(Check{Name: name, Status: Fail, Detail: err.Error(), Fix: "check the repository (sidecar check)"})
		return
	}
	now := r.o.Now()
	for _, t := range r.planned.Targets {
		var last *backup.Snapshot
		for i := range snaps {
			if containsString(snaps[i].Paths, t.Path) && (last == nil || snaps[i].Time.After(last.Time)) {
				last = &snaps[i]
			}
		}
		r.add(snapshotCheck(t.Path, last, r.tt, now))
	}
}

// snapshotCheck judges one target's newest snapshot (nil: none).
func snapshotCheck(path string, last *backup.Snapshot, tt *schedule.Timetable, now time.Time) Check {
	c := Check{Name: "snapshot " + path}
	if last == nil {
		c.Status, c.Detail, c.Fix = Warn, "no snapshot yet", "back up now (sidecar run-once), or wait for the next scheduled run; if runs happened, see their errors (docker logs of the sidecar)"
		return c
	}
	age := now.Sub(last.Time)
	c.Detail = fmt.Sprintf("newest %s, %s ago (%s)", last.ShortID, roundDuration(age), last.Time.UTC().Format(time.RFC3339))
	c.Status = Pass
	if tt == nil {
		return c
	}
	prev := tt.Prev(now)
	switch {
	case !prev.IsZero() && last.Time.Before(tt.Prev(prev)):
		c.Status = Fail
		c.Detail += "; no snapshot since the last two scheduled runs (" + prev.UTC().Format(time.RFC3339) + ")"
		c.Fix = "see why the runs failed (docker logs of the sidecar, sidecar health), fix it, then back up now: sidecar run-once"
	case !prev.IsZero() && last.Time.Before(prev):
		c.Status = Warn
		c.Detail += "; none since the last scheduled run (" + prev.UTC().Format(time.RFC3339) + "), which may still be running"
		c.Fix = "if no run is going, see the sidecar's log for the last run's error"
	}
	return c
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// roundDuration shortens a duration for people: seconds under an hour,
// minutes above.
func roundDuration(d time.Duration) time.Duration {
	if d > time.Hour || d < -time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}
