package backup

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/lifecycle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/platback/platback/internal/outbuf"
)

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in      string
		want    Location
		wantErr string
	}{
		{in: "s3:minio.internal/mattermost-backup-bucket", want: Location{Kind: "s3", Endpoint: "minio.internal", Secure: true, Bucket: "mattermost-backup-bucket"}},
		{in: "s3:https://minio.internal/restic-stackback-mattermost-bucket", want: Location{Kind: "s3", Endpoint: "minio.internal", Secure: true, Bucket: "restic-stackback-mattermost-bucket"}},
		{in: "s3:http://127.0.0.1:9000/bucket/some/prefix/", want: Location{Kind: "s3", Endpoint: "127.0.0.1:9000", Bucket: "bucket", Prefix: "some/prefix"}},
		{in: "s3:s3.amazonaws.com/bucket/prefix", want: Location{Kind: "s3", Endpoint: "s3.amazonaws.com", Secure: true, Bucket: "bucket", Prefix: "prefix"}},
		{in: "/srv/repo/", want: Location{Kind: "local", Path: "/srv/repo"}},
		{in: "local:/srv/repo", want: Location{Kind: "local", Path: "/srv/repo"}},
		{in: "rest:https://user:pw@host/", want: Location{Kind: "rest"}},
		{in: "", wantErr: "it is empty; set RESTIC_REPOSITORY"},
		{in: "s3:", wantErr: "no S3 endpoint"},
		{in: "s3:https://minio.internal/", wantErr: "no bucket"},
		{in: "s3:minio.internal/Bad_Bucket", wantErr: `bucket name "Bad_Bucket" is not valid`},
		{in: "s3:https://key:secret@minio.internal/b", wantErr: "S3 credentials do not belong in the URL"},
		{in: "local:relative/repo", wantErr: "absolute path"},
		{in: "ftp://host/x", wantErr: "unknown form"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLocation(tt.in)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrBadURL)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), "secret", "credentials must not be echoed")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestCheckVersion(t *testing.T) {
	tests := []struct {
		out, want, wantErr string
	}{
		{out: "restic 0.19.1 compiled with go1.26.8 on linux/amd64", want: "0.19.1"},
		{out: "restic 0.19.0 compiled with go1.25 on linux/arm64", want: "0.19.0"},
		{out: "restic 0.16.4 compiled with go1.21 on linux/amd64", wantErr: "found restic 0.16.4"},
		{out: "restic 0.20.0 compiled with go1.27 on linux/amd64", wantErr: "found restic 0.20.0"},
		{out: "rustic 0.9.5", wantErr: "cannot read a version"},
	}
	for _, tt := range tests {
		got, err := checkVersion(tt.out)
		if tt.wantErr != "" {
			require.ErrorIs(t, err, ErrUnsupportedRestic, tt.out)
			assert.Contains(t, err.Error(), tt.wantErr)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
}

func TestRedactor(t *testing.T) {
	r := newRedactor(map[string]string{
		"RESTIC_PASSWORD":       "correct-horse",
		"AWS_SECRET_ACCESS_KEY": "SECRETKEY123",
		"AWS_ACCESS_KEY_ID":     "AKIAEXAMPLE",
		"AWS_DEFAULT_REGION":    "us-east-1",
		"SHORT":                 "ab",
	})
	in := "Fatal: rest:https://alice:hunter2@host/repo failed with SECRETKEY123 and correct-horse; key AKIAEXAMPLE in us-east-1 ab"
	got := r.String(in)
	for _, secret := range []string{"hunter2", "SECRETKEY123", "correct-horse", "AKIAEXAMPLE"} {
		assert.NotContains(t, got, secret)
	}
	assert.Contains(t, got, "https://***@host/repo")
	assert.Contains(t, got, "us-east-1", "region is not secret")
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		p       Policy
		args    string
		wantErr string
	}{
		{p: DefaultPolicy(), args: "--keep-within 30d"},
		{p: Policy{Last: 3, Daily: 7, Weekly: 4, Monthly: 12, Yearly: 2}, args: "--keep-last 3 --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --keep-yearly 2"},
		{p: Policy{Within: "1y6m", Hourly: 24}, args: "--keep-within 1y6m --keep-hourly 24"},
		{p: Policy{Tags: []string{"keep"}}, args: "--keep-tag keep"},
		{p: Policy{}, wantErr: "keeps nothing"},
		{p: Policy{Within: "30 days"}, wantErr: `keep-within "30 days"`},
		{p: Policy{Within: "2w"}, wantErr: `keep-within "2w"`},
		{p: Policy{Daily: -1}, wantErr: "keep-daily is -1"},
		{p: Policy{Tags: []string{"a,b"}}, wantErr: "no comma"},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if tt.wantErr != "" {
			require.Error(t, err, "%+v", tt.p)
			assert.Contains(t, err.Error(), tt.wantErr)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tt.args, tt.p.String())
	}
}

func TestPlanForgetRefusesRemoveAll(t *testing.T) {
	out := []byte(`[{"tags":["kind=volume"],"host":"app","paths":["/volumes"],"keep":[{"id":"aa"}],"remove":[{"id":"bb"},{"id":"cc"}]},
	{"tags":["kind=postgres"],"host":"app","paths":["/databases/db.sql"],"keep":[],"remove":[{"id":"dd"}]}]`)
	res, err := planForget(out, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Kept)
	assert.Equal(t, 3, res.Removed)
	err = refuseRemoveAll(res.Groups, Policy{Tags: []string{"x"}})
	require.ErrorIs(t, err, ErrPolicyRemovesAll)
	assert.Contains(t, err.Error(), "kind=postgres")
	require.NoError(t, refuseRemoveAll(res.Groups[:1], Policy{Last: 1}))

	empty, err := planForget([]byte("[]\n"), nil)
	require.NoError(t, err)
	assert.Zero(t, empty.Removed)
}

func TestTailMessage(t *testing.T) {
	tl := outbuf.NewTail(128)
	_, _ = tl.Write([]byte(strings.Repeat("x", 100) + "\nsubprocess sh: oops\n"))
	_, _ = tl.Write([]byte(`{"message_type":"exit_error","code":1,"message":"Fatal: unable to save snapshot"}` + "\n"))
	msg := errorMessage(tl)
	assert.LessOrEqual(t, len(tl.Bytes()), 128)
	assert.Contains(t, msg, "Fatal: unable to save snapshot")
	assert.NotContains(t, msg, "message_type")
}

func TestBackupOutputParsesSummaryAndErrors(t *testing.T) {
	r := &Repo{log: slog.New(slog.DiscardHandler), opts: Options{ProgressEvery: time.Hour}}
	o := &backupOutput{r: r, lastLog: time.Now()}
	o.line([]byte(`{"message_type":"status","percent_done":0.5,"total_files":2,"files_done":1}`))
	o.line([]byte(`{"message_type":"error","error":{"message":"permission denied"},"during":"archival","item":"/data/x"}`))
	o.line([]byte(`{"message_type":"summary","files_new":2,"files_changed":1,"files_unmodified":3,"data_added":1055,"data_added_packed":952,"total_files_processed":6,"total_bytes_processed":300,"total_duration":1.5,"snapshot_id":"177931bd501a"}`))
	o.line([]byte("not json"))
	require.NotNil(t, o.summary)
	assert.Equal(t, Summary{SnapshotID: "177931bd501a", FilesNew: 2, FilesChanged: 1, FilesUnmodified: 3, DataAdded: 1055,
		DataAddedPacked: 952, TotalFiles: 6, TotalBytes: 300, Duration: 1500 * time.Millisecond}, *o.summary)
	assert.Equal(t, []string{"/data/x: permission denied"}, o.errors)
}

func TestExpiringRules(t *testing.T) {
	cfg := &lifecycle.Configuration{Rules: []lifecycle.Rule{
		{ID: "delete-old-backups", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 30}},
		{ID: "disabled", Status: "Disabled", Expiration: lifecycle.Expiration{Days: 1}},
		{ID: "other-prefix", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "logs/"}, Expiration: lifecycle.Expiration{Days: 1}},
		{ID: "abort-uploads", Status: "Enabled", AbortIncompleteMultipartUpload: lifecycle.AbortIncompleteMultipartUpload{DaysAfterInitiation: 2}},
	}}
	w := expiringRules(cfg, Location{Bucket: "restic-stackback-app-bucket", Prefix: "repo"})
	require.Len(t, w, 1)
	assert.Contains(t, w[0], `"delete-old-backups"`)
	assert.Contains(t, w[0], "after 30 days")
	assert.Contains(t, w[0], "DESTROY the repository")
}

func TestResticErrorMatchesExitCodes(t *testing.T) {
	for code, want := range map[int]error{3: ErrPartialBackup, 10: ErrRepoNotFound, 11: ErrLocked, 12: ErrWrongPassword} {
		err := error(&ResticError{Command: "x", ExitCode: code, cause: causeOf(code)})
		assert.ErrorIs(t, err, want, "exit %d", code)
	}
	err := error(&ResticError{Command: "backup", ExitCode: 1, Message: "Fatal: boom"})
	assert.False(t, errors.Is(err, ErrRepoNotFound))
	assert.Equal(t, "restic backup: exit status 1: Fatal: boom", err.Error())
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"s3:https://KEY:SECRET@minio.internal/bucket":    "s3:https://***@minio.internal/bucket",
		"rest:https://TOKEN@rest.internal:8000/repo":     "rest:https://***@rest.internal:8000/repo",
		"s3:KEY:SECRET@minio.internal/bucket":            "s3:***@minio.internal/bucket",
		"see s3:https://minio.internal/bucket@v2 for it": "see s3:https://minio.internal/bucket@v2 for it",
		"sftp:user@host:/srv/restic":                     "sftp:user@host:/srv/restic",
		"open repository rest:http://u:p%40ss@h/ failed": "open repository rest:http://***@h/ failed",
	}
	for in, want := range tests {
		assert.Equal(t, want, RedactURL(in), in)
	}
	_, err := ParseLocation("s3:KEY:hunter2@minio.internal/bucket")
	require.ErrorContains(t, err, "credentials do not belong in the URL")
	assert.NotContains(t, err.Error(), "hunter2")
}
