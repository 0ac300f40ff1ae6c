package backup

import (
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/lifecycle"
	"github.com/stretchr/testify/assert"
)

// Which lifecycle rules can delete a repository's objects: the decision
// table behind platback_bucket_expiration_rules and the run's warnings.
func TestMatchExpirationRules(t *testing.T) {
	days := func(n int) lifecycle.Expiration { return lifecycle.Expiration{Days: lifecycle.ExpirationDays(n)} }
	root := Location{Kind: "s3", Bucket: "b"}
	nested := Location{Kind: "s3", Bucket: "b", Prefix: "restic/app"}
	hexID := strings.Repeat("ab", 32)
	tests := []struct {
		name   string
		rule   lifecycle.Rule
		loc    Location
		match  bool
		action string
		filter string
	}{
		{name: "whole bucket, days (the seed's 30-day ILM policy)", rule: lifecycle.Rule{ID: "r", Status: "Enabled", Expiration: days(30)}, loc: root,
			match: true, action: "expires objects after 30 days", filter: "every object"},
		{name: "whole bucket, repository under a prefix", rule: lifecycle.Rule{Status: "Enabled", Expiration: days(30)}, loc: nested, match: true},
		{name: "expiration date", rule: lifecycle.Rule{Status: "Enabled", Expiration: lifecycle.Expiration{Date: lifecycle.ExpirationDate{Time: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}}},
			loc: root, match: true, action: "expires objects on 2027-01-01"},
		{name: "MinIO AllVersionsExpiration", rule: lifecycle.Rule{Status: "Enabled", AllVersionsExpiration: lifecycle.AllVersionsExpiration{Days: 7}}, loc: root,
			match: true, action: "deletes objects with all their versions after 7 days"},
		{name: "disabled", rule: lifecycle.Rule{Status: "Disabled", Expiration: days(1)}, loc: root},
		{name: "status in another case", rule: lifecycle.Rule{Status: "enabled", Expiration: days(1)}, loc: root, match: true},
		{name: "noncurrent versions only", rule: lifecycle.Rule{Status: "Enabled", NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: 30}}, loc: root},
		{name: "expired delete markers only", rule: lifecycle.Rule{Status: "Enabled", Expiration: lifecycle.Expiration{DeleteMarker: true}}, loc: root},
		{name: "delete marker expiration", rule: lifecycle.Rule{Status: "Enabled", DelMarkerExpiration: lifecycle.DelMarkerExpiration{Days: 3}}, loc: root},
		{name: "abort incomplete uploads", rule: lifecycle.Rule{Status: "Enabled", AbortIncompleteMultipartUpload: lifecycle.AbortIncompleteMultipartUpload{DaysAfterInitiation: 2}}, loc: root},
		{name: "transition only", rule: lifecycle.Rule{Status: "Enabled", Transition: lifecycle.Transition{Days: 30, StorageClass: "COLD"}}, loc: root},

		{name: "unrelated prefix, repository at the root", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "logs/"}, Expiration: days(1)}, loc: root},
		{name: "unrelated prefix, repository under a prefix", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "logs/"}, Expiration: days(1)}, loc: nested},
		{name: "sibling prefix", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "restic/other/"}, Expiration: days(1)}, loc: nested},
		{name: "prefix sharing the first letters only", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "restic/apple"}, Expiration: days(1)}, loc: nested},
		{name: "parent prefix", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "restic/"}, Expiration: days(1)}, loc: nested,
			match: true, filter: `prefix "restic/"`},
		{name: "partial parent prefix", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "res"}, Expiration: days(1)}, loc: nested, match: true},
		{name: "the repository's own prefix", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "restic/app/"}, Expiration: days(1)}, loc: nested, match: true},
		{name: "the repository's data", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "restic/app/data/"}, Expiration: days(1)}, loc: nested, match: true},
		{name: "one pack directory", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "data/7f/"}, Expiration: days(1)}, loc: root, match: true},
		{name: "one snapshot", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "snapshots/" + hexID}, Expiration: days(1)}, loc: root, match: true},
		{name: "restic's locks", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "locks/"}, Expiration: days(1)}, loc: root, match: true},
		{name: "the config object", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "conf"}, Expiration: days(1)}, loc: root, match: true},
		{name: "a name restic never writes", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "data/zz"}, Expiration: days(1)}, loc: root},
		{name: "longer than any key", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "config.bak"}, Expiration: days(1)}, loc: root},
		{name: "snapshots in upper case", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "snapshots/AB"}, Expiration: days(1)}, loc: root},
		{name: "legacy top-level prefix", rule: lifecycle.Rule{Status: "Enabled", Prefix: "restic/", Expiration: days(1)}, loc: nested, match: true},
		{name: "legacy top-level unrelated prefix", rule: lifecycle.Rule{Status: "Enabled", Prefix: "tmp/", Expiration: days(1)}, loc: nested},
		{name: "And prefix", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{And: lifecycle.And{Prefix: "restic/app/index/", ObjectSizeLessThan: 1 << 20}}, Expiration: days(1)},
			loc: nested, match: true, filter: `prefix "restic/app/index/", smaller than 1048576 bytes`},

		{name: "tag condition: restic never tags objects", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{Tag: lifecycle.Tag{Key: "tmp", Value: "1"}}, Expiration: days(1)}, loc: root},
		{name: "And with tags", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{And: lifecycle.And{Prefix: "", Tags: []lifecycle.Tag{{Key: "k", Value: "v"}}}}, Expiration: days(1)}, loc: root},
		{name: "small objects (config, keys, snapshots)", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{ObjectSizeLessThan: 4096}, Expiration: days(1)}, loc: root,
			match: true, filter: "every object, smaller than 4096 bytes"},
		{name: "large objects within pack sizes", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{ObjectSizeGreaterThan: 8 << 20}, Expiration: days(1)}, loc: root, match: true},
		{name: "objects larger than any restic writes", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{ObjectSizeGreaterThan: 1 << 30}, Expiration: days(1)}, loc: root},
		{name: "an empty size window", rule: lifecycle.Rule{Status: "Enabled", RuleFilter: lifecycle.Filter{And: lifecycle.And{ObjectSizeGreaterThan: 100, ObjectSizeLessThan: 101}}, Expiration: days(1)}, loc: root},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := matchExpirationRules(&lifecycle.Configuration{Rules: []lifecycle.Rule{tt.rule}}, tt.loc)
			if !tt.match {
				assert.Empty(t, got)
				return
			}
			if assert.Len(t, got, 1) {
				assert.Equal(t, tt.rule.ID, got[0].ID)
				if tt.action != "" {
					assert.Equal(t, tt.action, got[0].Action)
				}
				if tt.filter != "" {
					assert.Equal(t, tt.filter, got[0].Filter)
				}
			}
		})
	}
	assert.Empty(t, matchExpirationRules(nil, root), "no configuration")
}

func TestLifecycleWarnings(t *testing.T) {
	loc := Location{Kind: "s3", Bucket: "restic-app", Prefix: "repo"}
	w := lifecycleWarnings(loc, []ExpirationRule{{ID: "30d", Action: "expires objects after 30 days", Filter: "every object"}}, nil)
	if assert.Len(t, w, 1) {
		assert.True(t, strings.HasPrefix(w[0], WarnExpirationRule), w[0])
		for _, want := range []string{`"restic-app"`, `rule "30d" expires objects after 30 days`, `"repo/"`, "DESTROY the repository", "mc ilm rule rm", "RESTIC_KEEP_"} {
			assert.Contains(t, w[0], want)
		}
	}
	w = lifecycleWarnings(loc, nil, ErrLifecycleUnreadable)
	if assert.Len(t, w, 1) {
		assert.True(t, strings.HasPrefix(w[0], WarnLifecycleUnreadable), w[0])
	}
	assert.Empty(t, lifecycleWarnings(loc, nil, nil))
}
