// Package config reads the sidecar's configuration from environment
// variables: every variable is declared once in Vars, with its default and
// documentation (the README table is generated from it), and Load reads each
// once and checks them all at start-up, the credentials' too, reporting every
// bad one, not just the first. LoadHealth reads only what `sidecar health`
// needs.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/healthping"
	"github.com/platback/platback/internal/notify"
	"github.com/platback/platback/schedule"
	"github.com/platback/platback/vaultcreds"
)

// Var is one environment variable the sidecar reads.
type Var struct {
	Name    string
	Aliases []string // older names (stack-back's) that mean the same
	Default string
	Doc     string
}

// Vars are the sidecar's own variables. Credentials (RESTIC_PASSWORD,
// AWS_*, VAULT_*) are not listed here: package vaultcreds reads them (its
// Env* constants name them, its package documentation explains them).
var Vars = []Var{
	{Name: "RESTIC_REPOSITORY", Doc: "restic repository URL, e.g. `s3:https://minio.internal/restic-stackback-app-bucket`. May come from Vault instead (field `repository`)."},
	{Name: "AWS_DEFAULT_REGION", Aliases: []string{"AWS_REGION"}, Doc: "S3 region of the repository's bucket (and of COPY_REPOSITORY's), for S3 servers that refuse requests signed for another region (e.g. Garage: `garage`); given to restic and to the bucket check and creation. Empty: found from the bucket (MinIO needs none). A Vault field mapped to AWS_DEFAULT_REGION wins over it."},
	{Name: "BACKUP_CRON", Aliases: []string{"CRON_SCHEDULE"}, Default: "0 2 * * *", Doc: "when to back up: 5-field cron, `@daily`-style, or `@every 6h`."},
	{Name: "BACKUP_TZ", Aliases: []string{"TZ"}, Default: "UTC", Doc: "time zone of BACKUP_CRON, e.g. `Europe/Paris`."},
	{Name: "BACKUP_STAGGER", Default: "0", Doc: "spread stacks sharing a cron: each run is shifted by a stable offset in [0, stagger) derived from the project name, e.g. `20m`."},
	{Name: "RESTIC_KEEP_WITHIN", Aliases: []string{"KEEP_WITHIN"}, Doc: "retention: keep all snapshots within this duration of the newest (`30d`). Default `30d` when no RESTIC_KEEP_* is set."},
	{Name: "RESTIC_KEEP_LAST", Aliases: []string{"KEEP_LAST"}, Doc: "retention: keep the last N snapshots of each target."},
	{Name: "RESTIC_KEEP_HOURLY", Aliases: []string{"KEEP_HOURLY"}, Doc: "retention: keep N hourly snapshots."},
	{Name: "RESTIC_KEEP_DAILY", Aliases: []string{"KEEP_DAILY"}, Doc: "retention: keep N daily snapshots."},
	{Name: "RESTIC_KEEP_WEEKLY", Aliases: []string{"KEEP_WEEKLY"}, Doc: "retention: keep N weekly snapshots."},
	{Name: "RESTIC_KEEP_MONTHLY", Aliases: []string{"KEEP_MONTHLY"}, Doc: "retention: keep N monthly snapshots."},
	{Name: "RESTIC_KEEP_YEARLY", Aliases: []string{"KEEP_YEARLY"}, Doc: "retention: keep N yearly snapshots."},
	{Name: "RETENTION_CRON", Doc: "apply retention on this schedule instead of after each successful run."},
	{Name: "CHECK_AFTER_BACKUP", Default: "false", Doc: "run `restic check` after each run."},
	{Name: "CHECK_READ_DATA_SUBSET", Doc: "with CHECK_AFTER_BACKUP, also read this part of the data, in the forms restic check `--read-data-subset` takes: `n/t` (part n of t, t at most 256, e.g. `1/10`), a percentage (`5%`, `2.5%`) or a size (`500M`, `2G`). CHECK_CRON's checks rotate through CHECK_READ_DATA_PARTS instead."},
	{Name: "CHECK_CRON", Doc: "run `restic check` on its own schedule, in BACKUP_TZ, under the run lock (a check due while a backup runs waits for it): 5-field cron, `@weekly`-style, or `@every 24h`; empty: no scheduled check. Each check also reads the next part of the data (CHECK_READ_DATA_PARTS)."},
	{Name: "CHECK_READ_DATA_PARTS", Default: "12", Doc: "CHECK_CRON reads the data in this many parts, one per check (`--read-data-subset 1/12`, then `2/12`…, then `1/12` again), so every pack is read once every this many checks; `0`: structure only, no data read. 0 to 256. The next part is kept in PLATBACK_CACHE_DIR and moves on only after a check that passed: a failed check is retried with the same part. `sidecar check --rotate` takes the next part too."},
	{Name: "VERIFY_CRON", Doc: "run a restore drill (`sidecar verify`) on its own schedule, in BACKUP_TZ, under the run lock (a drill due while a backup runs waits for it): 5-field cron, `@weekly`-style, or `@every 168h`; empty: no scheduled drill. Each drill restores the latest snapshot of every target into scratch space (a volume's into a temporary volume, compared with the snapshot's file list; a database dump into a throwaway container of the database's own image, then counted), deletes the scratch, and notifies a target that failed."},
	{Name: "VERIFY_MAX_BYTES", Default: "0", Doc: "the largest volume snapshot or database dump a restore drill restores, as a size (`500M`, `20G`); a larger one fails its target, naming both sizes. `0`: no limit but the scratch volume's free space (the drill refuses a snapshot that would not leave 5% of its size plus 16 MiB free on the Docker data root)."},
	{Name: "COPY_REPOSITORY", Doc: "a second repository (another bucket, another S3 server, or a path on a mounted volume) that every run copies its new snapshots into with `restic copy`, after the targets and their retention, for 3-2-1 backups; empty: no copy. Or a Vault field mapped to COPY_REPOSITORY. Its password is `COPY_RESTIC_PASSWORD(_FILE)` or a Vault field mapped to COPY_RESTIC_PASSWORD, else RESTIC_PASSWORD; its S3 keys are the primary's (restic 0.19 opens both repositories of a copy with one key pair: give both buckets to one S3 user). A missing bucket or repository is created (with the primary's chunker parameters, so copies deduplicate). A failed copy does not fail the run: it is logged, notified, shown by `run-once` and in the `platback_copy_*` metrics, and the next run copies what this one missed."},
	{Name: "COPY_KEEP_WITHIN", Doc: "retention of the second copy, as RESTIC_KEEP_WITHIN; when no COPY_KEEP_* is set, the copy keeps what RESTIC_KEEP_* keeps. Applied after each copy (or on RETENTION_CRON), to the copied targets' groups."},
	{Name: "COPY_KEEP_LAST", Doc: "retention of the second copy: keep the last N snapshots of each target."},
	{Name: "COPY_KEEP_HOURLY", Doc: "retention of the second copy: keep N hourly snapshots."},
	{Name: "COPY_KEEP_DAILY", Doc: "retention of the second copy: keep N daily snapshots."},
	{Name: "COPY_KEEP_WEEKLY", Doc: "retention of the second copy: keep N weekly snapshots."},
	{Name: "COPY_KEEP_MONTHLY", Doc: "retention of the second copy: keep N monthly snapshots."},
	{Name: "COPY_KEEP_YEARLY", Doc: "retention of the second copy: keep N yearly snapshots."},
	{Name: "BACKUP_TIMEOUT", Default: "12h", Doc: "deadline of one target's backup; at least `1m`."},
	{Name: "HOOK_TIMEOUT", Default: "5m", Doc: "deadline of one hook command (`stack-back.hooks.*`); at least `1s`. A hook still running then is stopped (SIGTERM, then SIGKILL) when its container has `/bin/sh`, and counts as failed."},
	{Name: "STOP_TIMEOUT", Default: "30s", Doc: "how long a stop-during-backup container gets to stop before it is killed; at least `1s`, in whole seconds as Docker counts them (a fraction is rounded up: `1500ms` is `2s`)."},
	{Name: "LOG_LEVEL", Default: "info", Doc: "`debug`, `info`, `warn` or `error`."},
	{Name: "LOG_FORMAT", Default: "text", Doc: "`text` or `json`."},
	{Name: "METRICS_LISTEN", Default: ":9095", Doc: "address (`host:port` or `:port`) of the HTTP endpoint serving `/metrics` and `/healthz`; empty or `off` turns it off. `sidecar health` asks this host, or 127.0.0.1 when the host is empty, `0.0.0.0` or `::`."},
	{Name: "HEALTH_MAX_AGE_FACTOR", Default: "2", Doc: "`sidecar health` fails when no run has succeeded for this many schedule gaps after the start of the last successful run (or of the sidecar): 1 to 1000, fractions allowed. Each gap between two consecutive scheduled runs counts as one whatever its length, so a weekday, monthly or December-only schedule stays healthy through its long gaps; with `2` it fails once the second scheduled run after the last success is due, so one missed run, or a run in progress, does not count against it."},
	{Name: "NOTIFICATION_URLS", Doc: "where to tell people that something is wrong: one or more [shoutrrr](https://shoutrrr.nickfedor.com) URLs separated by spaces or commas, e.g. `telegram://token@telegram?chats=@channel`, `ntfy://ntfy.sh/topic`, or `generic+https://hooks.internal/backup` for a plain webhook (the message is the POST body), or `smtp://user:password@host:587/?from=…&to=…` for e-mail. Or `NOTIFICATION_URLS_FILE`, a file holding them. A URL shoutrrr cannot use stops the sidecar at start-up; errors and logs never show a URL's tokens."},
	{Name: "NOTIFICATION_LEVEL", Default: "error", Doc: "`error`: notify a failed run, target or check, a backup older than `sidecar health` allows, a failing start-up check; `info`: successful runs too."},
	{Name: "HEALTHCHECK_URL", Doc: "ping URL of a dead man's switch in the healthchecks.io convention (e.g. `https://hc-ping.com/<uuid>`), or `HEALTHCHECK_URL_FILE`, a file holding it: `<url>/start` when a run starts, `<url>` when it succeeded, `<url>/fail` with the error text as the body when it failed; scheduled runs and `sidecar run-once` alike. Each ping has 10 s and 2 retries; a failed ping is logged and counted, never fails the run."},
	{Name: "PLATBACK_LABEL_PREFIX", Default: discover.DefaultLabelPrefix, Doc: "prefix of the backup labels."},
	{Name: "PLATBACK_PROJECT", Doc: "compose project to back up; needed outside a container, overrides detection inside one."},
	{Name: "PLATBACK_CONTAINER", Doc: "the sidecar's own container id or name, when detection fails."},
	{Name: "PLATBACK_PROJECTS", Doc: "opt in to backing up several named compose projects (comma list); never all projects."},
	{Name: "PLATBACK_EXCLUDE_BINDS", Default: "false", Doc: "skip bind mounts, back up named volumes only."},
	{Name: "PLATBACK_HOST", Doc: "restic `--host` of the snapshots; default the compose project name (stable across container re-creation)."},
	{Name: "PLATBACK_CACHE_DIR", Default: "/cache", Doc: "restic cache and the sidecar's state file; mount a volume here."},
	{Name: "PLATBACK_CREATE_BUCKET", Default: "true", Doc: "create a missing S3 bucket (needs credentials allowed to)."},
	{Name: "PLATBACK_RESTIC", Default: "restic", Doc: "the restic binary (restic 0.19.x); the image ships it."},
	{Name: "PLATBACK_WORKER_IMAGE", Doc: "image of the short-lived worker containers that read volumes; default the sidecar's own image."},
	{Name: "PLATBACK_PARALLEL", Default: "1", Doc: "how many workers and database dumps run at once (1 to 16); the volumes that need no stop are shared out to that many workers, a stop window's volumes are always backed up one after the other in one worker. 1 keeps shared storage and the repository calm."},
}

// MinBackupTimeout is the shortest BACKUP_TIMEOUT accepted.
const MinBackupTimeout = time.Minute

// MaxHealthFactor is the largest HEALTH_MAX_AGE_FACTOR accepted.
const MaxHealthFactor = 1000

// MaxCheckParts bounds CHECK_READ_DATA_PARTS (restic's limit on t in
// --read-data-subset n/t).
const MaxCheckParts = maxSubsetBuckets

// MaxParallel bounds PLATBACK_PARALLEL.
const MaxParallel = 16

// Config is the checked configuration: the sidecar's settings and where
// each run's credentials come from.
type Config struct {
	Repository string // may be empty when Vault provides it
	// Region is AWS_DEFAULT_REGION (or AWS_REGION): the S3 region, when
	// the server needs one; a Vault field mapped to it wins.
	Region        string
	Schedule      schedule.Spec
	Policy        backup.Policy
	RetentionCron string
	Check         bool
	CheckSubset   string
	// CheckCron is CHECK_CRON, checked; empty: no scheduled check.
	CheckCron string
	// CheckParts is CHECK_READ_DATA_PARTS: the scheduled checks read part
	// n of CheckParts in turn; 0 reads no data.
	CheckParts    int
	BackupTimeout time.Duration
	StopTimeout   time.Duration
	HookTimeout   time.Duration
	LogLevel      slog.Level
	LogFormat     string
	Listen        string
	HealthFactor  float64
	LabelPrefix   string
	Project       string
	Container     string
	Projects      []string
	ExcludeBinds  bool
	Host          string
	CacheDir      string
	CreateBucket  bool
	WorkerImage   string
	Parallel      int
	Restic        string
	// NotificationURLs are the shoutrrr URLs of NOTIFICATION_URLS, checked.
	NotificationURLs  []string
	NotificationLevel notify.Level
	HealthcheckURL    string // checked; empty: no pings
	// VerifyCron is VERIFY_CRON, checked; empty: no scheduled restore drill.
	VerifyCron string
	// VerifyMaxBytes is VERIFY_MAX_BYTES; 0: no limit but free space.
	VerifyMaxBytes uint64
	// CopyRepository is COPY_REPOSITORY, checked; empty: no second copy,
	// unless the Vault field map fills COPY_REPOSITORY (CopyFromVault).
	CopyRepository string
	// CopyFromVault: the Vault field map fills COPY_REPOSITORY, so each run
	// may find a second repository in its credentials.
	CopyFromVault bool
	// CopyPolicy is the second copy's retention: COPY_KEEP_*, or Policy
	// when none is set.
	CopyPolicy backup.Policy
	// Credentials says where each run's credentials come from (Vault or
	// plain variables), checked: vaultcreds.NewSource builds the source from
	// it without reading the environment or checking again. Its secret
	// files were read once by the check and are read again only when used.
	Credentials vaultcreds.Settings
}

// Off is the value of METRICS_LISTEN that turns the endpoint off; Env
// gives it for a METRICS_LISTEN that is set and empty.
const Off = "off"

// Env adapts os.LookupEnv to Load's getenv: the variables for which an
// empty value means something (METRICS_LISTEN: off) read as Off when they
// are set and empty, where os.Getenv could not tell them from unset.
func Env(lookup func(string) (string, bool)) func(string) string {
	return func(name string) string {
		v, ok := lookup(name)
		if ok && strings.TrimSpace(v) == "" && name == "METRICS_LISTEN" {
			return Off
		}
		return v
	}
}

// lookup returns the value of v from its name or, failing that, an alias.
func lookup(getenv func(string) string, v Var) (string, string) {
	for _, name := range append([]string{v.Name}, v.Aliases...) {
		if val := getenv(name); val != "" {
			return val, name
		}
	}
	return v.Default, v.Name
}

// Load reads every variable once and checks them all, the credentials'
// variables too (see vaultcreds.SettingsFromEnv: each secret file is read
// once, to fail at start-up when it is missing, unreadable or empty). The
// error lists every bad one.
func Load(getenv func(string) string) (Config, error) {
	getenv = readOnce(getenv)
	l := &loader{getenv: getenv, vars: map[string]Var{}}
	for _, v := range Vars {
		l.vars[v.Name] = v
	}
	var c Config
	// The credentials' variables (package vaultcreds) are checked here too,
	// so that every bad variable is in the one start-up error.
	// They are listed last.
	var credErr error
	c.Credentials, credErr = vaultcreds.SettingsFromEnv(getenv)
	l.repository(&c)
	l.schedule(&c)
	l.retention(&c)
	l.copy(&c)
	l.runtime(&c)
	l.discovery(&c)
	l.alerts(&c)
	c.Restic = ResticBinary(getenv)
	if credErr != nil {
		l.errs = append(l.errs, credErr)
	}
	return c, errors.Join(l.errs...)
}

// loader reads variables and collects every error, in the order read.
type loader struct {
	getenv func(string) string
	vars   map[string]Var
	errs   []error
}

func (l *loader) get(name string) (value, used string) { return lookup(l.getenv, l.vars[name]) }

func (l *loader) str(name string) string { v, _ := l.get(name); return strings.TrimSpace(v) }

func (l *loader) bad(name, value, fix string) {
	l.errs = append(l.errs, fmt.Errorf("%s=%q: %s", name, value, fix))
}

// duration is a duration of at least min (why says what needs it).
func (l *loader) duration(name string, min time.Duration, why string) (time.Duration, bool) {
	v, used := l.get(name)
	d, err := time.ParseDuration(strings.TrimSpace(v))
	switch {
	case err != nil || d < 0:
		l.bad(used, v, durationFix(v))
	case d < min:
		l.bad(used, v, fmt.Sprintf("want at least %s: %s", fmtDuration(min), why))
	default:
		return d, true
	}
	return d, false
}

func (l *loader) boolean(name string) bool {
	v, used := l.get(name)
	b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(v)))
	if err != nil {
		l.bad(used, v, "want true or false")
	}
	return b
}

// repository reads RESTIC_REPOSITORY, which Vault may provide instead.
func (l *loader) repository(c *Config) {
	vcfg, vaultOK := c.Credentials.Vault()
	c.Repository = l.str("RESTIC_REPOSITORY")
	c.Region = l.str("AWS_DEFAULT_REGION")
	if strings.ContainsAny(c.Region, " /:") {
		l.bad("AWS_DEFAULT_REGION", c.Region, "want an S3 region name such as us-east-1 or garage, not a URL")
	}
	switch {
	case c.Repository != "":
		if _, err := backup.ParseLocation(c.Repository); err != nil {
			// Credentials in the URL must not reach logs: the value and
			// ParseLocation's error show it redacted.
			l.bad("RESTIC_REPOSITORY", backup.RedactURL(c.Repository), err.Error())
		}
	case !c.Credentials.UsesVault():
		l.errs = append(l.errs, errors.New("RESTIC_REPOSITORY is not set: set it to the repository URL, e.g. s3:https://minio.internal/restic-stackback-app-bucket"))
	case vaultOK && !mapsRepository(vcfg.Fields):
		l.errs = append(l.errs, fmt.Errorf("RESTIC_REPOSITORY is not set and %s=%q maps no field of the Vault secret to it: set RESTIC_REPOSITORY, or add repository=RESTIC_REPOSITORY to %s",
			vaultcreds.EnvFieldMap, vcfg.Fields.String(), vaultcreds.EnvFieldMap))
	}
}

// schedule reads the backup and retention schedules. Cron, time zone and
// stagger are checked one by one, so that each bad one is reported under
// its own variable.
func (l *loader) schedule(c *Config) {
	cron, cronName := l.get("BACKUP_CRON")
	tz, tzName := l.get("BACKUP_TZ")
	c.Project = l.str("PLATBACK_PROJECT")
	stagger, staggerOK := l.duration("BACKUP_STAGGER", 0, "")
	c.Schedule = schedule.Spec{Cron: strings.TrimSpace(cron), TZ: strings.TrimSpace(tz), Stagger: stagger, Name: c.Project}
	if c.Schedule.Name == "" {
		c.Schedule.Name = "platback" // replaced by the discovered project at run time
	}
	if err := (schedule.Spec{Cron: c.Schedule.Cron}).Validate(); err != nil {
		l.bad(cronName, cron, cronFix(c.Schedule.Cron, err))
	}
	if err := (schedule.Spec{Cron: "@daily", TZ: c.Schedule.TZ}).Validate(); err != nil {
		l.bad(tzName, tz, specProblem(err))
	}
	if staggerOK {
		if err := (schedule.Spec{Cron: "@daily", Stagger: stagger, Name: c.Schedule.Name}).Validate(); err != nil {
			v, _ := l.get("BACKUP_STAGGER")
			l.bad("BACKUP_STAGGER", v, specProblem(err))
		}
	}
	if rc := l.str("RETENTION_CRON"); rc != "" {
		c.RetentionCron = rc
		if err := (schedule.Spec{Cron: rc}).Validate(); err != nil {
			l.bad("RETENTION_CRON", rc, cronFix(rc, err))
		}
	}
	if cc := l.str("CHECK_CRON"); cc != "" {
		c.CheckCron = cc
		if err := (schedule.Spec{Cron: cc}).Validate(); err != nil {
			l.bad("CHECK_CRON", cc, cronFix(cc, err))
		}
	}
	if vc := l.str("VERIFY_CRON"); vc != "" {
		c.VerifyCron = vc
		if err := (schedule.Spec{Cron: vc}).Validate(); err != nil {
			l.bad("VERIFY_CRON", vc, cronFix(vc, err))
		}
	}
	if mb := l.str("VERIFY_MAX_BYTES"); mb != "" {
		if n, err := parseBytes(mb); err != nil || n < 0 {
			l.bad("VERIFY_MAX_BYTES", mb, "want a size such as 500M or 20G (k, M, G, T are powers of 1024), or 0 for no limit but free space")
		} else {
			c.VerifyMaxBytes = uint64(n)
		}
	}
}

// retention reads the policy and the check after each run.
func (l *loader) retention(c *Config) {
	var policyOK bool
	c.Policy, policyOK = policy(l.get, l.bad)
	if err := c.Policy.Validate(); policyOK && err != nil {
		l.errs = append(l.errs, err)
	}
	c.Check = l.boolean("CHECK_AFTER_BACKUP")
	c.CheckSubset = l.str("CHECK_READ_DATA_SUBSET")
	if c.CheckSubset != "" {
		if err := checkReadDataSubset(c.CheckSubset); err != nil {
			l.bad("CHECK_READ_DATA_SUBSET", c.CheckSubset, err.Error()+"; "+subsetHelp)
		}
	}
	parts := l.str("CHECK_READ_DATA_PARTS")
	if n, err := strconv.Atoi(parts); err != nil || n < 0 || n > MaxCheckParts {
		fix := fmt.Sprintf("want a whole number of parts from 0 (structure only) to %d, e.g. 12: each scheduled check reads the next part", MaxCheckParts)
		if strings.Contains(parts, "/") || strings.HasSuffix(parts, "%") {
			fix = "want the number of parts t alone, e.g. 12 (the checks read 1/12, 2/12… in turn); a fixed n/t, percentage or size goes in CHECK_READ_DATA_SUBSET, for CHECK_AFTER_BACKUP"
		}
		l.bad("CHECK_READ_DATA_PARTS", parts, fix)
	} else {
		c.CheckParts = n
	}
}

// Copies reports whether runs make a second copy: COPY_REPOSITORY is set,
// or the Vault field map may fill it.
func (c Config) Copies() bool { return c.CopyRepository != "" || c.CopyFromVault }

// copy reads the second copy's repository and retention.
func (l *loader) copy(c *Config) {
	vcfg, vaultOK := c.Credentials.Vault()
	c.CopyRepository = l.str("COPY_REPOSITORY")
	c.CopyFromVault = vaultOK && mapsVariable(vcfg.Fields, vaultcreds.EnvCopyRepository)
	if c.CopyRepository != "" {
		shown := backup.RedactURL(c.CopyRepository)
		if _, err := backup.ParseLocation(c.CopyRepository); err != nil {
			l.bad("COPY_REPOSITORY", shown, err.Error())
		} else if c.Repository != "" && SameRepository(c.CopyRepository, c.Repository) {
			l.bad("COPY_REPOSITORY", shown, "it is RESTIC_REPOSITORY itself: a copy must go to another repository (another bucket, S3 server or disk), or unset COPY_REPOSITORY")
		}
	}
	// With Vault, the copy's password is a field of the secret, like the
	// primary's: a plain variable beside it would be a second place for a
	// secret.
	if c.Credentials.UsesVault() {
		for _, name := range []string{vaultcreds.EnvCopyResticPassword, vaultcreds.EnvCopyResticPassword + "_FILE"} {
			if l.getenv(name) != "" {
				l.errs = append(l.errs, fmt.Errorf("%s is set while the credentials come from Vault: put the copy's password in the Vault secret and map it with %s (…,copy_password=%s), or unset %s to use the primary's password",
					name, vaultcreds.EnvFieldMap, vaultcreds.EnvCopyResticPassword, name))
			}
		}
	}
	copyGet := func(name string) (string, string) {
		copyName := strings.Replace(name, "RESTIC_KEEP_", "COPY_KEEP_", 1)
		v, _ := l.get(copyName)
		return v, copyName
	}
	var keepSet []string
	for _, v := range Vars {
		if strings.HasPrefix(v.Name, "COPY_KEEP_") && l.str(v.Name) != "" {
			keepSet = append(keepSet, v.Name)
		}
	}
	if !c.Copies() {
		set := keepSet
		if !c.Credentials.UsesVault() && (l.getenv(vaultcreds.EnvCopyResticPassword) != "" || l.getenv(vaultcreds.EnvCopyResticPassword+"_FILE") != "") {
			set = append(set, vaultcreds.EnvCopyResticPassword)
		}
		if len(set) > 0 {
			l.errs = append(l.errs, fmt.Errorf("%s set without COPY_REPOSITORY: set COPY_REPOSITORY to the second repository's URL, or unset them", strings.Join(set, ", ")))
		}
		return
	}
	if len(keepSet) == 0 {
		c.CopyPolicy = c.Policy
		return
	}
	p, ok := policy(copyGet, l.bad)
	if err := p.Validate(); ok && err != nil {
		l.errs = append(l.errs, fmt.Errorf("COPY_KEEP_*: %w", err))
	}
	c.CopyPolicy = p
}

// SameRepository reports whether two repository URLs name one repository
// (they differ at most by surrounding space and trailing slashes).
func SameRepository(a, b string) bool {
	norm := func(u string) string { return strings.TrimRight(strings.TrimSpace(u), "/") }
	return norm(a) == norm(b)
}

// runtime reads the deadlines, logging and the HTTP endpoint.
func (l *loader) runtime(c *Config) {
	c.BackupTimeout, _ = l.duration("BACKUP_TIMEOUT", MinBackupTimeout,
		"it bounds a whole backup of one target, e.g. 12h (the default)")
	// Docker's stop API counts whole seconds: below one second it would
	// kill the container at once, and a fraction is rounded up.
	c.StopTimeout, _ = l.duration("STOP_TIMEOUT", time.Second,
		"Docker counts the stop timeout in whole seconds, so less kills the container at once; e.g. 30s (the default)")
	if r := c.StopTimeout % time.Second; r > 0 {
		c.StopTimeout += time.Second - r
	}
	c.HookTimeout, _ = l.duration("HOOK_TIMEOUT", time.Second, "it bounds one hook command, e.g. 5m (the default)")
	level := l.str("LOG_LEVEL")
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		l.bad("LOG_LEVEL", level, "want debug, info, warn or error")
	}
	c.LogFormat = strings.ToLower(l.str("LOG_FORMAT"))
	if c.LogFormat != "text" && c.LogFormat != "json" {
		l.bad("LOG_FORMAT", c.LogFormat, "want text or json")
	}
	h := health(l.str, l.bad)
	c.Listen, c.HealthFactor = h.Listen, h.Factor
}

// discovery reads what to back up and how the workers run.
func (l *loader) discovery(c *Config) {
	c.LabelPrefix = l.str("PLATBACK_LABEL_PREFIX")
	if c.LabelPrefix == "" || strings.ContainsAny(c.LabelPrefix, " =,") {
		l.bad("PLATBACK_LABEL_PREFIX", c.LabelPrefix, "want a label prefix such as stack-back.")
	}
	c.Container = l.str("PLATBACK_CONTAINER")
	if p := l.str("PLATBACK_PROJECTS"); p != "" {
		for name := range strings.SplitSeq(p, ",") {
			name = strings.TrimSpace(name)
			if name == "" || name == "*" || strings.ContainsAny(name, "*?") {
				l.bad("PLATBACK_PROJECTS", p, "want a comma list of compose project names; wildcards are not allowed")
				break
			}
			if slices.Contains(c.Projects, name) {
				l.bad("PLATBACK_PROJECTS", p, fmt.Sprintf("project %q is listed twice; list each project once", name))
				break
			}
			c.Projects = append(c.Projects, name)
		}
	}
	c.ExcludeBinds = l.boolean("PLATBACK_EXCLUDE_BINDS")
	c.Host = l.str("PLATBACK_HOST")
	c.CacheDir = l.str("PLATBACK_CACHE_DIR")
	if !filepath.IsAbs(c.CacheDir) {
		l.bad("PLATBACK_CACHE_DIR", c.CacheDir, "want an absolute path, e.g. /cache")
	} else {
		// Mount destinations are compared with it: /cache/ must be /cache.
		c.CacheDir = filepath.Clean(c.CacheDir)
	}
	c.CreateBucket = l.boolean("PLATBACK_CREATE_BUCKET")
	c.WorkerImage = l.str("PLATBACK_WORKER_IMAGE")
	par := l.str("PLATBACK_PARALLEL")
	if n, err := strconv.Atoi(par); err != nil || n < 1 || n > MaxParallel {
		l.bad("PLATBACK_PARALLEL", par, fmt.Sprintf("want a whole number of targets from 1 to %d, e.g. 2", MaxParallel))
	} else {
		c.Parallel = n
	}
}

// alerts reads where notifications and health pings go. The URLs carry
// tokens: an error shows them redacted.
func (l *loader) alerts(c *Config) {
	if urls, from, ok := l.valueOrFile("NOTIFICATION_URLS"); ok && urls != "" {
		c.NotificationURLs = notify.SplitURLs(urls)
		for i, u := range c.NotificationURLs {
			if err := notify.CheckURL(u); err != nil {
				l.errs = append(l.errs, fmt.Errorf("%s: URL %d of %d (%s): %s", from, i+1, len(c.NotificationURLs), notify.RedactURL(u), err))
			}
		}
	}
	level, levelName := l.get("NOTIFICATION_LEVEL")
	var err error
	if c.NotificationLevel, err = notify.ParseLevel(level); err != nil {
		l.bad(levelName, level, err.Error())
	}
	if u, from, ok := l.valueOrFile("HEALTHCHECK_URL"); ok && u != "" {
		if _, err := healthping.Parse(u); err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s (%s): %s", from, healthping.Redact(u), err))
		} else {
			c.HealthcheckURL = u
		}
	}
}

// valueOrFile reads name, or the file named by name_FILE; from says which
// (the variable, or the variable and the file). ok is false when a bad
// value was reported. Neither the value nor the file's content is shown.
func (l *loader) valueOrFile(name string) (value, from string, ok bool) {
	v := l.str(name)
	file := strings.TrimSpace(l.getenv(name + "_FILE"))
	switch {
	case file == "":
		return v, name, true
	case v != "":
		l.errs = append(l.errs, fmt.Errorf("%s and %s_FILE are both set: set one of them", name, name))
		return "", name, false
	}
	data, err := os.ReadFile(file)
	if err != nil {
		l.bad(name+"_FILE", file, "cannot read it: "+err.Error())
		return "", name + "_FILE", false
	}
	v = strings.TrimSpace(string(data))
	if v == "" {
		l.bad(name+"_FILE", file, "the file is empty: write the value in it, or unset "+name+"_FILE")
		return "", name + "_FILE", false
	}
	return v, name + "_FILE=" + strconv.Quote(file), true
}

// readOnce returns getenv remembering each answer: every variable is read
// from the environment once, however many checks look at it.
func readOnce(getenv func(string) string) func(string) string {
	read := map[string]string{}
	return func(name string) string {
		v, ok := read[name]
		if !ok {
			v = getenv(name)
			read[name] = v
		}
		return v
	}
}

// Health is what `sidecar health` needs to ask the daemon.
type Health struct {
	Listen string  // METRICS_LISTEN; empty when the endpoint is off
	Factor float64 // HEALTH_MAX_AGE_FACTOR
}

// LoadHealth reads and checks METRICS_LISTEN and HEALTH_MAX_AGE_FACTOR only,
// as Load does: `sidecar health` runs at every Docker health check and reads
// no credential variable and no secret file, so a secret file briefly
// missing (a rotation) does not fail the health check.
func LoadHealth(getenv func(string) string) (Health, error) {
	var errs []error
	str := func(name string) string { v, _ := lookup(getenv, varNamed(name)); return strings.TrimSpace(v) }
	bad := func(name, value, fix string) { errs = append(errs, fmt.Errorf("%s=%q: %s", name, value, fix)) }
	h := health(str, bad)
	return h, errors.Join(errs...)
}

// health reads and checks METRICS_LISTEN and HEALTH_MAX_AGE_FACTOR.
func health(str func(string) string, bad func(name, value, fix string)) Health {
	var h Health
	h.Listen = str("METRICS_LISTEN")
	if strings.EqualFold(h.Listen, Off) {
		h.Listen = ""
	}
	if h.Listen != "" {
		if fix := listenFix(h.Listen); fix != "" {
			bad("METRICS_LISTEN", h.Listen, fix)
		}
	}
	factor := str("HEALTH_MAX_AGE_FACTOR")
	var err error
	// ParseFloat also takes NaN and Inf, which no comparison catches.
	h.Factor, err = strconv.ParseFloat(factor, 64)
	if err != nil || !(h.Factor >= 1 && h.Factor <= MaxHealthFactor) {
		bad("HEALTH_MAX_AGE_FACTOR", factor, "want a number of schedule gaps from 1 to 1000, e.g. 2 (the default)")
	}
	return h
}

// ResticBinary is PLATBACK_RESTIC, or its default: for the commands that
// run restic without loading the whole configuration (version, worker).
func ResticBinary(getenv func(string) string) string {
	v, _ := lookup(getenv, varNamed("PLATBACK_RESTIC"))
	if v = strings.TrimSpace(v); v == "" {
		return varNamed("PLATBACK_RESTIC").Default
	}
	return v
}

// varNamed returns the declaration of the variable name in Vars.
func varNamed(name string) Var {
	for _, v := range Vars {
		if v.Name == name {
			return v
		}
	}
	panic("config: no variable " + name + " in Vars")
}

// policy reads RESTIC_KEEP_*; with none set it is backup.DefaultPolicy().
// ok is false when a bad value was reported.
func policy(get func(string) (string, string), bad func(name, value, fix string)) (p backup.Policy, ok bool) {
	ok = true
	within, withinName := get("RESTIC_KEEP_WITHIN")
	p.Within = strings.TrimSpace(within)
	if p.Within != "" {
		if err := (backup.Policy{Within: p.Within}).Validate(); err != nil {
			bad(withinName, within, "want a restic duration: numbers with y, m, d or h (years, months, days, hours), e.g. 30d, 72h or 1y6m")
			ok = false
		}
	}
	set := p.Within != ""
	for _, k := range []struct {
		name string
		dst  *int
	}{
		{"RESTIC_KEEP_LAST", &p.Last}, {"RESTIC_KEEP_HOURLY", &p.Hourly}, {"RESTIC_KEEP_DAILY", &p.Daily},
		{"RESTIC_KEEP_WEEKLY", &p.Weekly}, {"RESTIC_KEEP_MONTHLY", &p.Monthly}, {"RESTIC_KEEP_YEARLY", &p.Yearly},
	} {
		v, used := get(k.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			bad(used, v, "want a whole number of snapshots, 0 or more, e.g. 7")
			ok = false
			continue
		}
		*k.dst = n
		set = set || n > 0
	}
	if !set {
		return backup.DefaultPolicy(), ok
	}
	return p, ok
}

// mapsRepository reports whether the Vault field map fills RESTIC_REPOSITORY.
func mapsRepository(m vaultcreds.FieldMap) bool {
	return mapsVariable(m, vaultcreds.EnvResticRepository)
}

// mapsVariable reports whether the Vault field map fills the variable name.
func mapsVariable(m vaultcreds.FieldMap, name string) bool {
	for _, f := range m {
		if f.Env == name {
			return true
		}
	}
	return false
}

// durationFix is the fix for a value time.ParseDuration refused (or a
// negative one), with a hint for the usual mistakes.
func durationFix(v string) string {
	const want = "want a duration with a unit, such as 30s, 20m or 12h"
	v = strings.TrimSpace(v)
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return fmt.Sprintf("a bare number has no unit: write %sm for minutes or %ss for seconds (%s)", v, v, want)
	}
	if n, ok := strings.CutSuffix(v, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days > 0 {
			return fmt.Sprintf("days are not a unit here: write %dh (%s)", days*24, want)
		}
	}
	return want
}

// specProblem is what a *schedule.SpecError says is wrong, without the
// value it repeats.
func specProblem(err error) string {
	if se, ok := errors.AsType[*schedule.SpecError](err); ok {
		return se.Problem
	}
	return err.Error()
}

// cronFix is the fix for a bad cron expression, with a hint for an
// English "every …".
func cronFix(expr string, err error) string {
	fix := specProblem(err)
	fields := strings.Fields(strings.ToLower(expr))
	if len(fields) == 2 && fields[0] == "every" {
		hint := `"@daily" (or "@every 24h")`
		if d, err := time.ParseDuration(fields[1]); err == nil && d > 0 {
			hint = strconv.Quote("@every " + fields[1])
		} else if w, ok := map[string]string{"hour": "@hourly", "day": "@daily", "week": "@weekly", "month": "@monthly", "year": "@yearly"}[fields[1]]; ok {
			hint = strconv.Quote(w)
		}
		fix += "; for " + strconv.Quote(expr) + " write " + hint
	}
	return fix
}

// listenFix says what is wrong with a METRICS_LISTEN value, or "".
func listenFix(listen string) string {
	const want = "want host:port or :port with a port number from 1 to 65535, e.g. :9095 or 127.0.0.1:9095, or empty to turn the endpoint off"
	if n, err := strconv.Atoi(listen); err == nil && n >= 1 && n <= 65535 {
		return fmt.Sprintf("a bare port needs a colon: write :%d (%s)", n, want)
	}
	if strings.Contains(listen, "/") {
		return "an address to listen on, not a URL: no scheme or path (" + want + ")"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return want
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return want
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Sprintf("%q is neither an IP address nor a host name (%s)", host, want)
	}
	return ""
}

// validHostname reports whether h is a DNS host name: dot-separated labels
// of letters, digits and hyphens.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// MarkdownTable renders Vars as the README's table.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n| --- | --- | --- |\n")
	for _, v := range Vars {
		name := "`" + v.Name + "`"
		for _, a := range v.Aliases {
			name += " (or `" + a + "`)"
		}
		def := ""
		if v.Default != "" {
			def = "`" + v.Default + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, def, v.Doc)
	}
	return b.String()
}

// fmtDuration prints a duration without zero parts: 1m, not 1m0s.
func fmtDuration(d time.Duration) string {
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}
