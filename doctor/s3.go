package doctor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
)

// ProbePrefix is where the S3 access check writes its probe object, under
// the repository's prefix and outside restic's directories (config, keys/,
// locks/, snapshots/, index/, data/). The object is deleted at once.
const ProbePrefix = "platback-doctor/"

// s3State is what the S3 checks found.
type s3State struct {
	client       *minio.Client
	bucketExists bool
}

// key is name under the repository's prefix.
func (r *run) key(name string) string {
	if r.loc.Prefix == "" {
		return name
	}
	return r.loc.Prefix + "/" + name
}

func (r *run) s3Checks(ctx context.Context) {
	names := []string{"s3 endpoint", "s3 bucket", "s3 access", "s3 lifecycle", "s3 versioning", "s3 object lock"}
	skipAll := func(from int, why string) {
		for _, n := range names[from:] {
			r.skip(n, why)
		}
	}
	if r.url == "" {
		if r.creds != nil {
			r.add(Check{Name: "s3 endpoint", Status: Fail, Detail: r.repoWhy, Fix: "set RESTIC_REPOSITORY, e.g. s3:https://minio.internal/restic-stackback-app-bucket"})
			skipAll(1, "needs the repository URL")
			return
		}
		skipAll(0, "the repository URL comes from the credentials: "+r.credsWhy)
		return
	}
	if r.loc.Kind == "" {
		skipAll(0, r.repoWhy)
		return
	}
	if r.loc.Kind != "s3" {
		skipAll(0, fmt.Sprintf("the repository is not on S3 (%s)", r.loc.Kind))
		return
	}
	if !r.endpoint(ctx) {
		skipAll(1, "needs the S3 endpoint (check s3 endpoint)")
		return
	}
	if r.repo == nil {
		skipAll(1, r.repoWhy)
		return
	}
	c, err := r.repo.S3Client()
	if err != nil {
		r.add(Check{Name: "s3 bucket", Status: Fail, Detail: err.Error()})
		skipAll(2, "needs an S3 client")
		return
	}
	r.s3.client = c
	if !r.bucket(ctx) {
		skipAll(2, "needs the bucket (check s3 bucket)")
		return
	}
	r.access(ctx)
	r.lifecycle(ctx)
	r.versioning(ctx)
	r.objectLock(ctx)
}

// endpoint: does anything answer HTTP(S) at the endpoint? No credential is
// sent; any HTTP status counts.
func (r *run) endpoint(ctx context.Context) bool {
	const name = "s3 endpoint"
	scheme := "https"
	if !r.loc.Secure {
		scheme = "http"
	}
	u := scheme + "://" + r.loc.Endpoint + "/"
	ctx, cancel := r.step(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err == nil {
		var resp *http.Response
		if resp, err = http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			r.add(Check{Name: name, Status: Pass, Detail: fmt.Sprintf("%s answers (HTTP %d)", u, resp.StatusCode)})
			return true
		}
	}
	r.add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("%s does not answer: %v", u, err),
		Fix: "check the host, port and http/https of RESTIC_REPOSITORY, DNS and the network between the sidecar and S3"})
	return false
}

func (r *run) bucket(ctx context.Context) bool {
	const name = "s3 bucket"
	b := r.loc.Bucket
	ctx, cancel := r.step(ctx)
	defer cancel()
	exists, err := r.s3.client.BucketExists(ctx, b)
	switch code := minio.ToErrorResponse(err).Code; {
	case err == nil && exists:
		r.s3.bucketExists = true
		r.add(Check{Name: name, Status: Pass, Detail: fmt.Sprintf("bucket %q exists on %s", b, r.loc.Endpoint)})
		return true
	case err == nil && r.o.CreateBucket:
		r.add(Check{Name: name, Status: Warn, Detail: fmt.Sprintf("bucket %q does not exist yet: the first run creates it (PLATBACK_CREATE_BUCKET=true)", b),
			Fix: "create it with admin credentials now, or let the first run (sidecar run-once) create it"})
	case err == nil:
		r.add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("bucket %q does not exist on %s and PLATBACK_CREATE_BUCKET=false", b, r.loc.Endpoint),
			Fix: fmt.Sprintf("create it with admin credentials (mc mb ALIAS/%s)", b)})
	case code == "AccessDenied":
		r.add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("Access Denied for bucket %q on %s: either it does not exist (S3 answers so for a missing bucket when the credentials may only use that bucket) or these credentials may not use it", b, r.loc.Endpoint),
			Fix: fmt.Sprintf("create the bucket with admin credentials, and allow the user s3:* on arn:aws:s3:::%s and arn:aws:s3:::%s/* (examples/provisioning/s3-policy.json)", b, b)})
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch":
		r.add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("S3 rejected the credentials (%s)", code),
			Fix: "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the Vault fields mapped to them)"})
	default:
		r.add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("bucket %q on %s: %s", b, r.loc.Endpoint, r.redact(err.Error())),
			Fix: "check the endpoint and the credentials"})
	}
	return false
}

// redact removes every credential value from s.
func (r *run) redact(s string) string {
	if r.creds == nil {
		return s
	}
	return r.creds.Redact(s)
}

// access lists, writes and deletes one small object under ProbePrefix, as
// restic lists, writes and deletes (locks, pruned packs).
func (r *run) access(ctx context.Context) {
	const name = "s3 access"
	ctx, cancel := r.step(ctx)
	defer cancel()
	c, b := r.s3.client, r.loc.Bucket
	deny := func(op string, err error, fix string) {
		resp := minio.ToErrorResponse(err)
		why := r.redact(err.Error())
		if resp.Code != "" {
			why = resp.Code + ": " + r.redact(resp.Message)
		}
		r.add(Check{Name: name, Status: Fail, Detail: fmt.Sprintf("%s in bucket %q refused: %s", op, b, why), Fix: fix})
	}
	policy := fmt.Sprintf("arn:aws:s3:::%s/* (examples/provisioning/s3-policy.json)", b)
	for o := range c.ListObjects(ctx, b, minio.ListObjectsOptions{Prefix: r.key(""), MaxKeys: 1}) {
		if o.Err != nil {
			deny("list", o.Err, "allow s3:ListBucket on arn:aws:s3:::"+b+": restic lists its files")
			return
		}
		break
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	key := r.key(ProbePrefix + "probe-" + hex.EncodeToString(rnd[:]))
	body := "written by sidecar doctor to check write and delete access; safe to delete\n"
	info, err := c.PutObject(ctx, b, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{ContentType: "text/plain"})
	if err != nil {
		deny("put", err, "allow s3:PutObject on "+policy+": restic writes its data, index, snapshots and locks")
		return
	}
	err = c.RemoveObject(ctx, b, key, minio.RemoveObjectOptions{VersionID: info.VersionID})
	note := ""
	if err != nil && info.VersionID != "" {
		// Deleting a version needs more (s3:DeleteObjectVersion) and object
		// lock refuses it; a plain delete is what restic does.
		if err = c.RemoveObject(ctx, b, key, minio.RemoveObjectOptions{}); err == nil {
			note = " (the bucket keeps its noncurrent version)"
		}
	}
	if err != nil {
		deny("delete", err, fmt.Sprintf("allow s3:DeleteObject on %s: restic deletes its lock files and, when pruning, unused data; then remove the probe object %s with admin credentials", policy, key))
		return
	}
	r.add(Check{Name: name, Status: Pass, Detail: fmt.Sprintf("listed, wrote and deleted %s%s", key, note)})
}

func (r *run) lifecycle(ctx context.Context) {
	const name = "s3 lifecycle"
	ctx, cancel := r.step(ctx)
	defer cancel()
	l := r.repo.CheckLifecycle(ctx)
	b := r.loc.Bucket
	switch {
	case l.Err != nil:
		r.add(Check{Name: name, Status: Warn, Detail: l.Err.Error(),
			Fix: fmt.Sprintf("check the bucket's rules with admin credentials (mc ilm rule ls ALIAS/%s), or allow s3:GetLifecycleConfiguration on arn:aws:s3:::%s", b, b)})
	case l.BucketMissing:
		r.skip(name, "the bucket does not exist")
	case len(l.Rules) > 0:
		var rules, ids []string
		for _, rule := range l.Rules {
			rules = append(rules, rule.String())
			ids = append(ids, cmpOr(rule.ID, "ID"))
		}
		r.add(Check{Name: name, Status: Fail,
			Detail: fmt.Sprintf("REPOSITORY AT RISK: bucket %q has lifecycle %s: it will delete restic's config, keys and still-used data and DESTROY the repository", b, strings.Join(rules, "; ")),
			Fix: fmt.Sprintf("remove the rule (mc ilm rule rm --id %s ALIAS/%s) or move its filter away from the repository; let retention (RESTIC_KEEP_*, restic forget --prune) remove old snapshots",
				strings.Join(ids, " / "), b)})
	default:
		r.add(Check{Name: name, Status: Pass, Detail: fmt.Sprintf("no lifecycle rule of bucket %q expires the repository's objects", b)})
	}
}

func (r *run) versioning(ctx context.Context) {
	const name = "s3 versioning"
	ctx, cancel := r.step(ctx)
	defer cancel()
	c, b := r.s3.client, r.loc.Bucket
	v, err := c.GetBucketVersioning(ctx, b)
	if err != nil {
		r.add(Check{Name: name, Status: Warn, Detail: "versioning state unknown: " + r.redact(err.Error()),
			Fix: fmt.Sprintf("check it with admin credentials (mc version info ALIAS/%s)", b)})
		return
	}
	switch v.Status {
	case "Enabled":
		if noncurrentExpires(ctx, c, b) {
			r.add(Check{Name: name, Status: Pass, Detail: "enabled, and a lifecycle rule expires noncurrent versions: what restic deletes is kept for a while, then freed"})
			return
		}
		r.add(Check{Name: name, Status: Warn, Detail: "enabled, and no lifecycle rule expires noncurrent versions: every file restic deletes (locks, pruned data) stays stored and billed for ever",
			Fix: fmt.Sprintf("add a NoncurrentVersionExpiration rule (mc ilm rule add --noncurrent-expire-days 30 ALIAS/%s); it is safe for restic, unlike an Expiration rule", b)})
	case "Suspended":
		r.add(Check{Name: name, Status: Pass, Detail: "suspended: deleted objects are gone, older versions stay"})
	default:
		r.add(Check{Name: name, Status: Pass, Detail: "not enabled: a deleted or overwritten object is gone for good (restic never overwrites; keep a second copy for 3-2-1)"})
	}
}

// noncurrentExpires reports whether an enabled lifecycle rule expires
// noncurrent versions.
func noncurrentExpires(ctx context.Context, c *minio.Client, bucket string) bool {
	cfg, err := c.GetBucketLifecycle(ctx, bucket)
	if err != nil || cfg == nil {
		return false
	}
	for _, rule := range cfg.Rules {
		if strings.EqualFold(rule.Status, "Enabled") && noncurrent(rule) {
			return true
		}
	}
	return false
}

func noncurrent(rule lifecycle.Rule) bool {
	n := rule.NoncurrentVersionExpiration
	return n.NoncurrentDays > 0 || n.NewerNoncurrentVersions > 0
}

func (r *run) objectLock(ctx context.Context) {
	const name = "s3 object lock"
	ctx, cancel := r.step(ctx)
	defer cancel()
	b := r.loc.Bucket
	enabled, mode, validity, unit, err := r.s3.client.GetObjectLockConfig(ctx, b)
	switch code := minio.ToErrorResponse(err).Code; {
	case err != nil && strings.Contains(code, "ObjectLockConfigurationNotFound"):
		r.add(Check{Name: name, Status: Pass, Detail: "off"})
	case err != nil:
		r.add(Check{Name: name, Status: Warn, Detail: "object lock state unknown: " + r.redact(err.Error()),
			Fix: fmt.Sprintf("check it with admin credentials (mc retention info --default ALIAS/%s)", b)})
	case enabled != "Enabled":
		r.add(Check{Name: name, Status: Pass, Detail: "off"})
	case mode == nil || validity == nil || unit == nil:
		r.add(Check{Name: name, Status: Pass, Detail: "enabled, no default retention"})
	default:
		r.add(Check{Name: name, Status: Pass, Detail: fmt.Sprintf("enabled, default retention %s %d %s: what restic deletes (locks, pruned data) stays as locked versions until then, protected and still billed",
			*mode, *validity, strings.ToLower(string(*unit)))})
	}
}
