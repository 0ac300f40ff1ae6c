package backup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

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

// ErrLifecycleUnreadable: the bucket's lifecycle configuration could not be
// read (typically Access Denied with per-app credentials). The rules are then
// unknown, which is not the same as "no rule".
var ErrLifecycleUnreadable = errors.New("bucket lifecycle configuration not readable")

// errNoSuchBucket: S3 says the bucket does not exist.
var errNoSuchBucket = errors.New("the bucket does not exist")

// Warning texts about the bucket's lifecycle configuration (in
// EnsureResult.Warnings and ProbeResult.Warnings) start with these, so a
// caller that only kept the text can tell them apart.
const (
	WarnExpirationRule      = "REPOSITORY AT RISK: "
	WarnLifecycleUnreadable = "bucket lifecycle unknown: "
)

// ExpirationRule is an enabled S3 lifecycle rule that can delete objects of
// the repository. Restic keeps its config, keys and still-referenced data as
// objects that never change, so expiring them by age destroys the repository;
// retention belongs to `restic forget --prune`.
type ExpirationRule struct {
	ID     string // the rule's ID, empty when it has none
	Action string // what the rule does, e.g. "expires objects after 30 days"
	Filter string // what it applies to, e.g. `every object` or `prefix "app/"`
}

func (e ExpirationRule) String() string {
	id := e.ID
	if id == "" {
		id = "(no ID)"
	}
	return fmt.Sprintf("rule %q %s (filter: %s)", id, e.Action, e.Filter)
}

// Lifecycle is what the lifecycle configuration of the repository's bucket
// means for the repository.
type Lifecycle struct {
	// Rules are the rules that can delete the repository's objects (see
	// ExpirationRule); none when the bucket has no lifecycle configuration.
	Rules []ExpirationRule
	// Err says why the configuration could not be read; it wraps
	// ErrLifecycleUnreadable, and Rules are then unknown.
	Err error
	// Warnings say the same for people: one per rule (starting with
	// WarnExpirationRule) or one about the unreadable configuration
	// (starting with WarnLifecycleUnreadable).
	Warnings []string
	// BucketMissing: the bucket does not exist (yet), so it has no rules;
	// the first run creates it when Options.CreateBucket allows.
	BucketMissing bool
}

// CheckLifecycle reads the lifecycle configuration of the repository's S3
// bucket, without logging; other repositories than S3 have none. It is the
// cheap check `sidecar plan` does: no restic call, nothing written.
func (r *Repo) CheckLifecycle(ctx context.Context) Lifecycle {
	if r.loc.Kind != "s3" {
		return Lifecycle{}
	}
	var l Lifecycle
	c, err := r.s3Client()
	if err != nil {
		l.Err = fmt.Errorf("%w: S3 client for %s: %w", ErrLifecycleUnreadable, r.loc.Endpoint, err)
	} else {
		ctx, cancel := context.WithTimeout(ctx, r.opts.Timeouts.Open)
		defer cancel()
		l.Rules, l.Err = r.expirationRules(ctx, c)
		if errors.Is(l.Err, errNoSuchBucket) {
			l.Err, l.BucketMissing = nil, true
		}
	}
	l.Warnings = lifecycleWarnings(r.loc, l.Rules, l.Err)
	return l
}

func (r *Repo) expirationRules(ctx context.Context, c *minio.Client) ([]ExpirationRule, error) {
	cfg, err := c.GetBucketLifecycle(ctx, r.loc.Bucket)
	if err == nil {
		return matchExpirationRules(cfg, r.loc), nil
	}
	b := r.loc.Bucket
	switch code := minio.ToErrorResponse(err).Code; {
	case code == "NoSuchLifecycleConfiguration":
		return nil, nil
	case code == "AccessDenied":
		return nil, fmt.Errorf("%w: bucket %q on %s: these credentials may not read it (Access Denied), so a rule that expires the repository's objects cannot be ruled out; "+
			"check the bucket's rules with admin credentials (mc ilm rule ls ALIAS/%s), or allow s3:GetLifecycleConfiguration on arn:aws:s3:::%s",
			ErrLifecycleUnreadable, b, r.loc.Endpoint, b, b)
	case code == "NoSuchBucket":
		return nil, fmt.Errorf("%w: %w: bucket %q on %s", ErrLifecycleUnreadable, errNoSuchBucket, b, r.loc.Endpoint)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return nil, fmt.Errorf("%w: bucket %q: no answer from S3 endpoint %s before the deadline", ErrLifecycleUnreadable, b, r.loc.Endpoint)
	default:
		return nil, fmt.Errorf("%w: bucket %q on %s: %s", ErrLifecycleUnreadable, b, r.loc.Endpoint, r.redact.String(err.Error()))
	}
}

// lifecycleWarnings turns a lifecycle check into warnings: one per rule that
// can delete the repository's objects, or one saying the rules are unknown.
func lifecycleWarnings(loc Location, rules []ExpirationRule, err error) []string {
	if err != nil {
		return []string{WarnLifecycleUnreadable + err.Error()}
	}
	var warnings []string
	for _, rule := range rules {
		where := "the repository at the bucket's root"
		if loc.Prefix != "" {
			where = fmt.Sprintf("the repository's objects under %q", loc.key(""))
		}
		warnings = append(warnings, fmt.Sprintf(
			"%sbucket %q: lifecycle %s, which can match %s: it will delete restic's config, keys and still-used data and DESTROY the repository; "+
				"remove the rule (mc ilm rule rm --id ID ALIAS/%s) or move its filter away from the repository, and let retention (RESTIC_KEEP_*, restic forget --prune) remove old snapshots",
			WarnExpirationRule, loc.Bucket, rule, where, loc.Bucket))
	}
	return warnings
}

// expiringRules is lifecycleWarnings for the rules of cfg that match loc.
func expiringRules(cfg *lifecycle.Configuration, loc Location) []string {
	return lifecycleWarnings(loc, matchExpirationRules(cfg, loc), nil)
}

// maxResticObject bounds the size of every object restic writes: packs stay
// below its largest --pack-size (128 MiB), and index, snapshot, key and
// config files are far smaller.
const maxResticObject = 256 << 20

// matchExpirationRules returns the rules of cfg that can delete an object of
// the repository at loc:
//   - the rule is enabled;
//   - it deletes current objects: Expiration by days or date, or MinIO's
//     AllVersionsExpiration. NoncurrentVersionExpiration (only versions
//     restic has already replaced or deleted), ExpiredObjectDeleteMarker and
//     DelMarkerExpiration (delete markers only), transitions and the abort
//     of incomplete uploads leave the repository's current objects alone;
//   - its prefix can match one of the repository's keys (config, keys/,
//     locks/, snapshots/, index/, data/ under the repository's prefix);
//   - it has no tag condition (restic never tags objects, so a rule that
//     requires a tag matches none of them);
//   - its size condition can match (restic's objects range from a hundred
//     bytes to its pack size; only "larger than 256 MiB" excludes them).
func matchExpirationRules(cfg *lifecycle.Configuration, loc Location) []ExpirationRule {
	if cfg == nil {
		return nil
	}
	var out []ExpirationRule
	for _, rule := range cfg.Rules {
		if !strings.EqualFold(rule.Status, "Enabled") {
			continue
		}
		action := expirationAction(rule)
		if action == "" {
			continue
		}
		f := rule.RuleFilter
		prefix := rule.Prefix
		for _, p := range []string{f.Prefix, f.And.Prefix} {
			if p != "" {
				prefix = p
			}
		}
		if !f.Tag.IsEmpty() || len(f.And.Tags) > 0 {
			continue
		}
		larger := max(f.ObjectSizeGreaterThan, f.And.ObjectSizeGreaterThan)
		smaller := f.ObjectSizeLessThan
		if s := f.And.ObjectSizeLessThan; s > 0 && (smaller == 0 || s < smaller) {
			smaller = s
		}
		if larger >= maxResticObject || (smaller > 0 && smaller <= larger+1) {
			continue
		}
		if !prefixMatchesRepository(prefix, loc) {
			continue
		}
		var conds []string
		if prefix == "" {
			conds = append(conds, "every object")
		} else {
			conds = append(conds, fmt.Sprintf("prefix %q", prefix))
		}
		if larger > 0 {
			conds = append(conds, fmt.Sprintf("larger than %d bytes", larger))
		}
		if smaller > 0 {
			conds = append(conds, fmt.Sprintf("smaller than %d bytes", smaller))
		}
		out = append(out, ExpirationRule{ID: rule.ID, Action: action, Filter: strings.Join(conds, ", ")})
	}
	return out
}

// expirationAction describes how rule deletes current objects; "" when it
// does not.
func expirationAction(rule lifecycle.Rule) string {
	e := rule.Expiration
	switch {
	case !e.IsDaysNull():
		return fmt.Sprintf("expires objects after %d days", e.Days)
	case !e.IsDateNull():
		return "expires objects on " + e.Date.Format("2006-01-02")
	case !rule.AllVersionsExpiration.IsNull():
		return fmt.Sprintf("deletes objects with all their versions after %d days", rule.AllVersionsExpiration.Days)
	}
	return ""
}

// repositoryKeys are the forms of the keys restic writes in a repository,
// relative to its prefix; '#' stands for a lower-case hex digit.
var repositoryKeys = func() []string {
	id := strings.Repeat("#", 64)
	return []string{"config", "keys/" + id, "locks/" + id, "snapshots/" + id, "index/" + id, "data/##/" + id}
}()

// prefixMatchesRepository reports whether a lifecycle rule's prefix can
// match a key of the repository at loc: it lies above the repository's
// prefix, or inside it on the path of a key restic writes. A rule on
// "logs/" in a bucket whose repository is at the root matches nothing of it.
func prefixMatchesRepository(prefix string, loc Location) bool {
	base := loc.key("")
	if len(prefix) <= len(base) {
		return strings.HasPrefix(base, prefix)
	}
	if !strings.HasPrefix(prefix, base) {
		return false
	}
	rest := prefix[len(base):]
	for _, form := range repositoryKeys {
		if keyFormHasPrefix(form, rest) {
			return true
		}
	}
	return false
}

// keyFormHasPrefix reports whether some key of the given form starts with p.
func keyFormHasPrefix(form, p string) bool {
	if len(p) > len(form) {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case form[i] == '#':
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		case c != form[i]:
			return false
		}
	}
	return true
}
