package backup

import (
	"context"
	"fmt"

	"github.com/minio/minio-go/v7"
)

// S3Client returns a minio-go client for the repository's S3 endpoint with
// the credentials and TLS settings of Options (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, CACertFile, InsecureTLS), the
// client EnsureRepo and CheckLifecycle use. Other repositories have none.
func (r *Repo) S3Client() (*minio.Client, error) {
	if r.loc.Kind != "s3" {
		return nil, fmt.Errorf("repository %s is not on S3", redactURL(r.url))
	}
	return r.s3Client()
}

// SnapshotsNoLock is Snapshots without a repository lock (restic
// --no-lock): it writes nothing to the repository, so it suits checks that
// must stay read-only, and it never waits for another process's lock.
func (r *Repo) SnapshotsNoLock(ctx context.Context, f Filter) ([]Snapshot, error) {
	args, err := f.args()
	if err != nil {
		return nil, err
	}
	var out []byte
	err = r.run(ctx, invocation{command: "snapshots", args: append([]string{"--no-lock"}, args...), json: true,
		timeout: r.opts.Timeouts.Snapshot, onLine: func(b []byte) { out = append(out, b...) }})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return parseSnapshots(out)
}
