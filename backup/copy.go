package backup

import (
	"context"
	"errors"
	"fmt"
	"maps"
)

// ErrCopyCredentials is a copy between two S3 repositories whose S3 keys
// differ: restic 0.19 reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
// once per process for every repository it opens (the S3 URL cannot carry
// keys, and the source repository of `copy --from-repo` has no variables
// of its own for them), so one `restic copy` can use one key pair only.
var ErrCopyCredentials = errors.New("the two S3 repositories need the same S3 keys: restic 0.19 opens both repositories of a copy with one AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY pair")

// s3KeyEnv are the variables restic takes S3 credentials from, for every
// S3 repository a process opens.
var s3KeyEnv = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}

// CopyOptions select the snapshots CopyFrom copies.
type CopyOptions struct {
	// Filter selects the source's snapshots by host, tags and paths;
	// empty fields match everything.
	Filter Filter
	// Snapshots, when not empty, are the ids of the snapshots to copy.
	Snapshots []string
}

// CopyFrom copies snapshots of src into r (`restic copy` run against r, the
// destination, with src as its `--from-repo`). Snapshots r already holds
// (restic compares their content, not their ids) are not copied again, so
// calling it after every run copies the new ones. The source and its
// password reach restic in the environment (RESTIC_FROM_REPOSITORY,
// RESTIC_FROM_PASSWORD or RESTIC_FROM_PASSWORD_FILE), never its arguments.
// When both are S3 repositories their S3 keys must be equal
// (ErrCopyCredentials, checked before restic runs). It takes locks in both
// repositories, and the Backup deadline.
func (r *Repo) CopyFrom(ctx context.Context, src *Repo, o CopyOptions) error {
	env, secrets, err := r.fromEnv(src)
	if err != nil {
		return err
	}
	args, err := o.Filter.args()
	if err != nil {
		return err
	}
	args = append(args, o.Snapshots...)
	err = r.run(ctx, invocation{command: "copy", args: args, locking: true, timeout: r.opts.Timeouts.Backup,
		onLine: discard, env: env, redact: &secrets})
	if err != nil {
		return fmt.Errorf("copy snapshots from %s to %s: %w", redactURL(src.url), redactURL(r.url), err)
	}
	return nil
}

// fromEnv is the environment that makes restic open src as the source
// repository (`--from-repo`) of a command run against r, and a redactor of
// both repositories' secrets.
func (r *Repo) fromEnv(src *Repo) ([]string, redactor, error) {
	if r.loc.Kind == "s3" && src.loc.Kind == "s3" {
		for _, name := range s3KeyEnv {
			if r.opts.Env[name] != src.opts.Env[name] {
				return nil, redactor{}, fmt.Errorf("copy from %s to %s: %w (%s differs); give both repositories' buckets to one S3 user",
					redactURL(src.url), redactURL(r.url), ErrCopyCredentials, name)
			}
		}
	}
	env := []string{"RESTIC_FROM_REPOSITORY=" + src.url}
	switch e := src.opts.Env; {
	case e["RESTIC_PASSWORD"] != "":
		env = append(env, "RESTIC_FROM_PASSWORD="+e["RESTIC_PASSWORD"])
	case e["RESTIC_PASSWORD_FILE"] != "":
		env = append(env, "RESTIC_FROM_PASSWORD_FILE="+e["RESTIC_PASSWORD_FILE"])
	case e["RESTIC_PASSWORD_COMMAND"] != "":
		env = append(env, "RESTIC_FROM_PASSWORD_COMMAND="+e["RESTIC_PASSWORD_COMMAND"])
	}
	if src.loc.Kind == "s3" && r.loc.Kind != "s3" {
		// Only the source reads S3: its keys.
		for _, name := range s3KeyEnv {
			if v := src.opts.Env[name]; v != "" {
				env = append(env, name+"="+v)
			}
		}
	}
	all := maps.Clone(r.opts.Env)
	for k, v := range src.opts.Env {
		all["FROM_"+k] = v
	}
	return env, newRedactor(all), nil
}
