package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIO is a real MinIO server on 127.0.0.1 with its data in a temp dir.
type MinIO struct {
	Endpoint  string // host:port
	AccessKey string // root user
	SecretKey string // root password
	Admin     *madmin.AdminClient
	Client    *minio.Client // root client
	proc      *Process
	dir       string
}

// NewMinIO starts a MinIO server with its data under dir and waits until it
// answers. Close stops it.
func NewMinIO(dir string) (*MinIO, error) { return newMinIO(dir, "") }

// newMinIO starts a server on a free port; when another test's server
// took the port first (ErrPortTaken) it tries another.
func newMinIO(dir, region string) (*MinIO, error) {
	for attempt := 1; ; attempt++ {
		m, err := launchMinIO(dir, region)
		if !errors.Is(err, ErrPortTaken) || attempt == 3 {
			return m, err
		}
	}
}

// StartMinIOInRegion is StartMinIO with the server's region set
// (MINIO_SITE_REGION): requests signed for another region are refused,
// as by S3 servers that need one (Garage).
func StartMinIOInRegion(tb testing.TB, region string) *MinIO {
	tb.Helper()
	m, err := newMinIO(tb.TempDir(), region)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Close)
	return m
}

func launchMinIO(dir, region string) (*MinIO, error) {
	bin, err := ToolPath("minio")
	if err != nil {
		return nil, err
	}
	port, err := FreeTCPPort()
	if err != nil {
		return nil, err
	}
	console, err := FreeTCPPort()
	if err != nil {
		return nil, err
	}
	m := &MinIO{
		Endpoint:  "127.0.0.1:" + strconv.Itoa(port),
		AccessKey: "platback-root",
		SecretKey: "platback-root-secret",
		dir:       dir,
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	env := []string{"MINIO_ROOT_USER=" + m.AccessKey, "MINIO_ROOT_PASSWORD=" + m.SecretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off"}
	if region != "" {
		env = append(env, "MINIO_SITE_REGION="+region)
	}
	m.proc, err = Launch(bin,
		[]string{"server", "--quiet", "--address", m.Endpoint, "--console-address", "127.0.0.1:" + strconv.Itoa(console), filepath.Join(dir, "data")},
		env, filepath.Join(dir, "minio.log"))
	if err != nil {
		return nil, err
	}
	ok := func(status int) bool { return status == 200 }
	if err := m.proc.WaitHTTP("http://"+m.Endpoint+"/minio/health/ready", 60*time.Second, ok); err != nil {
		m.proc.Stop()
		return nil, fmt.Errorf("%w\n%s", err, m.proc.LogTail(2000))
	}
	if m.Admin, err = madmin.New(m.Endpoint, m.AccessKey, m.SecretKey, false); err != nil {
		m.proc.Stop()
		return nil, err
	}
	m.Client, err = minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""), Region: region})
	if err != nil {
		m.proc.Stop()
		return nil, err
	}
	return m, nil
}

// StartMinIO is NewMinIO for one test: the server stops with the test.
func StartMinIO(tb testing.TB) *MinIO {
	tb.Helper()
	m, err := NewMinIO(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Close)
	return m
}

// Close stops the server.
func (m *MinIO) Close() { m.proc.Stop() }

// Stop stops the server (to test an endpoint going away).
func (m *MinIO) Stop() { m.proc.Stop() }

// RepoURL is the restic repository URL of bucket/prefix on this server.
func (m *MinIO) RepoURL(bucket, prefix string) string {
	u := "s3:http://" + m.Endpoint + "/" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return u
}

// MakeBucket creates a bucket with the root credentials.
func (m *MinIO) MakeBucket(tb testing.TB, bucket string) {
	tb.Helper()
	if err := m.Client.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{}); err != nil {
		tb.Fatalf("testbed: make bucket %s: %v", bucket, err)
	}
}

// AddAppUser creates a MinIO user whose policy is the seed's per-app policy:
// s3:* on arn:aws:s3:::<bucket>/* and nothing else.
func (m *MinIO) AddAppUser(tb testing.TB, user, secret, bucket string) {
	tb.Helper()
	ctx := context.Background()
	policy, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Effect":   "Allow",
			"Action":   []string{"s3:*"},
			"Resource": []string{"arn:aws:s3:::" + bucket + "/*"},
		}},
	})
	name := "app-" + user
	if err := m.Admin.AddCannedPolicy(ctx, name, policy); err != nil {
		tb.Fatalf("testbed: add policy %s: %v", name, err)
	}
	if err := m.Admin.AddUser(ctx, user, secret); err != nil {
		tb.Fatalf("testbed: add user %s: %v", user, err)
	}
	if _, err := m.Admin.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{name}, User: user}); err != nil {
		tb.Fatalf("testbed: attach policy %s to %s: %v", name, user, err)
	}
}
