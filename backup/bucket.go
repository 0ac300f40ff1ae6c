package backup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
)

// s3Client builds a minio-go client for the repository's endpoint with the
// repository's credentials and TLS settings.
func (r *Repo) s3Client() (*minio.Client, error) {
	env := r.opts.Env
	var creds *credentials.Credentials
	if env["AWS_ACCESS_KEY_ID"] != "" {
		creds = credentials.NewStaticV4(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"])
	} else {
		creds = credentials.NewIAM("")
	}
	transport, err := r.s3Transport()
	if err != nil {
		return nil, err
	}
	return minio.New(r.loc.Endpoint, &minio.Options{
		Creds: creds, Secure: r.loc.Secure, Region: r.region(), Transport: transport,
		MaxRetries: 3,
	})
}

// region is the S3 region from AWS_DEFAULT_REGION (restic's name) or AWS_REGION.
func (r *Repo) region() string {
	if v := r.opts.Env["AWS_DEFAULT_REGION"]; v != "" {
		return v
	}
	return r.opts.Env["AWS_REGION"]
}

func (r *Repo) s3Transport() (http.RoundTripper, error) {
	t, err := minio.DefaultTransport(r.loc.Secure)
	if err != nil {
		return nil, err
	}
	if r.opts.CACertFile == "" && !r.opts.InsecureTLS {
		return t, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: r.opts.InsecureTLS} //nolint:gosec // the user asked for it
	if r.opts.CACertFile != "" {
		pem, err := os.ReadFile(r.opts.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate %s: %w", r.opts.CACertFile, err)
		}
		pool, _ := x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate %s holds no PEM certificate", r.opts.CACertFile)
		}
		cfg.RootCAs = pool
	}
	t.TLSClientConfig = cfg
	return t, nil
}

// ensureBucket makes sure the repository's bucket exists, creating it when
// Options.CreateBucket allows. It reports whether it created the bucket.
func (r *Repo) ensureBucket(ctx context.Context, c *minio.Client) (bool, error) {
	b := r.loc.Bucket
	exists, err := c.BucketExists(ctx, b)
	if err != nil {
		return false, r.bucketError("check", err)
	}
	if exists {
		return false, nil
	}
	if !r.opts.CreateBucket {
		return false, fmt.Errorf("%w: bucket %q on %s: create it (with admin credentials) or allow the sidecar to create it", ErrBucketMissing, b, r.loc.Endpoint)
	}
	err = c.MakeBucket(ctx, b, minio.MakeBucketOptions{Region: r.region()})
	switch minio.ToErrorResponse(err).Code {
	case "":
		if err != nil {
			return false, r.bucketError("create", err)
		}
		r.log.Info("created bucket", "bucket", b, "endpoint", r.loc.Endpoint)
		return true, nil
	case "BucketAlreadyOwnedByYou", "BucketAlreadyExists":
		return false, nil
	}
	return false, r.bucketError("create", err)
}

// bucketError explains an S3 error on the bucket. With per-app
// least-privilege credentials S3 answers Access Denied for a missing bucket
// as for a forbidden one, so both possibilities are named.
func (r *Repo) bucketError(op string, err error) error {
	b := r.loc.Bucket
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "AccessDenied":
		return fmt.Errorf("%w: %s bucket %q on %s: either the bucket does not exist (S3 answers Access Denied for a missing bucket when the credentials may only use that bucket) "+
			"or these credentials (AWS_ACCESS_KEY_ID) are not allowed to use it; create the bucket with admin credentials and check the user's policy",
			ErrAccessDenied, op, b, r.loc.Endpoint)
	case resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch":
		return fmt.Errorf("%w: %s bucket %q on %s: S3 rejected the credentials (%s); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
			ErrAccessDenied, op, b, r.loc.Endpoint, resp.Code)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %s bucket %q: no answer from S3 endpoint %s before the deadline", ErrInterrupted, op, b, r.loc.Endpoint)
	}
	return fmt.Errorf("%s bucket %q on %s: %s", op, b, r.loc.Endpoint, r.redact.String(err.Error()))
}

// lifecycleWarnings returns a warning for each enabled lifecycle rule that
// expires objects in the repository's prefix: such a rule deletes restic's
// config, keys and still-referenced packs and so destroys the repository.
func (r *Repo) lifecycleWarnings(ctx context.Context, c *minio.Client) []string {
	cfg, err := c.GetBucketLifecycle(ctx, r.loc.Bucket)
	if err != nil {
		r.log.Debug("bucket lifecycle not readable", "bucket", r.loc.Bucket, "err", r.redact.String(err.Error()))
		return nil
	}
	return expiringRules(cfg, r.loc)
}

func expiringRules(cfg *lifecycle.Configuration, loc Location) []string {
	var warnings []string
	for _, rule := range cfg.Rules {
		if rule.Status != "Enabled" || (rule.Expiration.IsDaysNull() && rule.Expiration.IsDateNull()) {
			continue
		}
		prefix := rule.Prefix
		if rule.RuleFilter.Prefix != "" {
			prefix = rule.RuleFilter.Prefix
		}
		if !prefixesOverlap(prefix, loc.key("")) {
			continue
		}
		after := fmt.Sprintf("after %d days", rule.Expiration.Days)
		if rule.Expiration.IsDaysNull() {
			after = "on " + rule.Expiration.Date.Format("2006-01-02")
		}
		warnings = append(warnings, fmt.Sprintf(
			"bucket %q has lifecycle rule %q that expires objects %s: it will delete restic's config, keys and still-used data and DESTROY the repository; "+
				"remove the rule (mc ilm rule rm) and let retention (RESTIC_KEEP_*, restic forget --prune) remove old snapshots",
			loc.Bucket, rule.ID, after))
	}
	return warnings
}

// prefixesOverlap reports whether objects under a can be objects under b.
func prefixesOverlap(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return b[:len(a)] == a
}
