package backup

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Location is a parsed restic repository URL.
type Location struct {
	Kind string // "local", "s3" or the restic backend name (rest, sftp, ...)
	// Path is the directory of a local repository.
	Path string
	// S3 fields.
	Endpoint string // host[:port]
	Secure   bool   // https
	Bucket   string
	Prefix   string // object key prefix inside the bucket, no leading or trailing slash
}

// otherBackends are restic backends platback passes through without checks.
var otherBackends = []string{"rest", "sftp", "b2", "azure", "gs", "swift", "rclone"}

// ParseLocation parses every repository URL form restic accepts for local
// and S3 repositories:
//
//	/srv/restic-repo, local:/srv/restic-repo
//	s3:minio.internal/bucket[/prefix]        (https, restic's default)
//	s3:https://minio.internal/bucket[/prefix]
//	s3:http://127.0.0.1:9000/bucket[/prefix]
//
// Other restic backends (rest:, sftp:, ...) are accepted as they are.
func ParseLocation(repo string) (Location, error) {
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("%w %q: %s", ErrBadURL, redactURL(repo), why)
	}
	switch {
	case repo == "":
		return bad("it is empty; set RESTIC_REPOSITORY, e.g. s3:https://minio.internal/restic-stackback-app-bucket")
	case strings.HasPrefix(repo, "s3:"):
		return parseS3(repo, bad)
	case strings.HasPrefix(repo, "local:"), strings.HasPrefix(repo, "/"):
		p := strings.TrimPrefix(repo, "local:")
		if !filepath.IsAbs(p) {
			return bad("a local repository needs an absolute path")
		}
		return Location{Kind: "local", Path: filepath.Clean(p)}, nil
	}
	for _, b := range otherBackends {
		if strings.HasPrefix(repo, b+":") {
			return Location{Kind: b}, nil
		}
	}
	return bad("unknown form; use s3:https://host/bucket[/prefix], s3:host/bucket or an absolute local path")
}

func parseS3(repo string, bad func(string) (Location, error)) (Location, error) {
	rest := strings.TrimPrefix(repo, "s3:")
	loc := Location{Kind: "s3", Secure: true}
	if strings.HasPrefix(rest, "http://") || strings.HasPrefix(rest, "https://") {
		u, err := url.Parse(rest)
		if err != nil {
			return bad("it does not parse as a URL")
		}
		if u.User != nil {
			return bad("S3 credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or use Vault)")
		}
		loc.Secure = u.Scheme == "https"
		loc.Endpoint = u.Host
		rest = strings.TrimPrefix(u.Path, "/")
	} else {
		host, path, _ := strings.Cut(rest, "/")
		if strings.Contains(host, "@") {
			return bad("S3 credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or use Vault)")
		}
		loc.Endpoint, rest = host, path
	}
	if loc.Endpoint == "" {
		return bad("no S3 endpoint; use s3:https://host/bucket")
	}
	bucket, prefix, _ := strings.Cut(strings.Trim(rest, "/"), "/")
	if bucket == "" {
		return bad("no bucket; use s3:https://" + loc.Endpoint + "/<bucket>[/prefix]")
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return bad(fmt.Sprintf("bucket name %q is not valid: %v", bucket, err))
	}
	loc.Bucket, loc.Prefix = bucket, strings.Trim(prefix, "/")
	return loc, nil
}

// key returns the object key of name inside the repository's prefix.
func (l Location) key(name string) string {
	if l.Prefix == "" {
		return name
	}
	return l.Prefix + "/" + name
}
