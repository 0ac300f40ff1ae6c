package backup_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/testbed"
)

// s3 is the MinIO server shared by this package's tests.
var s3 *testbed.MinIO

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(ensureHelper())
	}
	dir, err := os.MkdirTemp("", "platback-backup-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s3, err = testbed.NewMinIO(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start MinIO:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	s3.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

var bucketSeq atomic.Int64

// newBucketName returns a bucket name no other test uses.
func newBucketName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), bucketSeq.Add(1))
}

// rootEnv is restic's environment with MinIO's root credentials.
func rootEnv(password string) map[string]string {
	return map[string]string{
		"RESTIC_PASSWORD":       password,
		"AWS_ACCESS_KEY_ID":     s3.AccessKey,
		"AWS_SECRET_ACCESS_KEY": s3.SecretKey,
	}
}

// logBuffer captures a Repo's log output.
type logBuffer struct{ strings.Builder }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(&b.Builder, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openRepo opens repoURL with the pinned restic and a per-test cache.
func openRepo(t *testing.T, repoURL string, opts backup.Options) *backup.Repo {
	t.Helper()
	if opts.Restic == "" {
		opts.Restic = testbed.Tool(t, "restic")
	}
	if opts.CacheDir == "" {
		opts.CacheDir = filepath.Join(t.TempDir(), "cache")
	}
	if opts.Host == "" {
		opts.Host = "test-host"
	}
	r, err := backup.Open(context.Background(), repoURL, opts)
	if err != nil {
		t.Fatalf("open %s: %v", repoURL, err)
	}
	return r
}
