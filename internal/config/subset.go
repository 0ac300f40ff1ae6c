package config

import (
	"errors"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// subsetHelp is the fix printed for a bad CHECK_READ_DATA_SUBSET.
const subsetHelp = "want n/t to read part n of t (1 ≤ n ≤ t ≤ 256, e.g. 1/10), " +
	"a percentage above 0 and at most 100 (e.g. 5% or 2.5%) or a size with a unit B, K, M, G or T (e.g. 500M or 2G), " +
	"as restic check --read-data-subset takes"

// maxSubsetBuckets is restic's limit on t in n/t (totalBucketsMax).
const maxSubsetBuckets = 256

// checkReadDataSubset accepts exactly the values restic 0.19.1 accepts for
// check --read-data-subset (checkFlags in cmd/restic/cmd_check.go, with
// stringToIntSlice, parsePercentage and ui.ParseBytes), so that a value
// restic would refuse fails at start-up rather than after every backup.
// The one difference: restic lets "NaN%" through (no comparison rejects
// NaN, and restic then reads a single pack); it is refused here.
func checkReadDataSubset(s string) error {
	// "n/t", or a bare number, which restic reads as a one-element n/t and
	// refuses.
	if parts, ok := uintList(s); ok {
		switch {
		case len(parts) == 1:
			return errors.New("a bare number is neither n/t nor a size: add a unit (e.g. 500M) or a % sign")
		case len(parts) != 2:
			return errors.New("n/t takes exactly two numbers")
		}
		n, t := parts[0], parts[1]
		if n == 0 || t == 0 || n > t {
			return errors.New("n/t needs 1 ≤ n ≤ t, e.g. 1/10")
		}
		if t > maxSubsetBuckets {
			return errors.New("n/t needs t ≤ 256 (restic's limit)")
		}
		return nil
	}
	if num, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsNaN(p) {
			return errors.New("not a percentage")
		}
		if p <= 0 || p > 100 {
			return errors.New("a percentage must be above 0 and at most 100")
		}
		return nil
	}
	size, err := parseBytes(s)
	if err != nil {
		return errors.New("neither n/t, a percentage nor a size")
	}
	if size <= 0 {
		return errors.New("a size must be above 0")
	}
	return nil
}

// uintList is restic's stringToIntSlice: s split on "/", every part a
// base-10 unsigned integer.
func uintList(s string) ([]uint64, bool) {
	var out []uint64
	for part := range strings.SplitSeq(s, "/") {
		n, err := strconv.ParseUint(part, 10, 0)
		if err != nil {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

// parseBytes is restic's ui.ParseBytes: an integer with an optional unit
// suffix b/B, k/K, m/M, g/G or t/T (powers of 1024).
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty size")
	}
	num, unit := s[:len(s)-1], uint64(1)
	switch s[len(s)-1] {
	case 'b', 'B':
	case 'k', 'K':
		unit = 1 << 10
	case 'm', 'M':
		unit = 1 << 20
	case 'g', 'G':
		unit = 1 << 30
	case 't', 'T':
		unit = 1 << 40
	default:
		num = s
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, err
	}
	hi, lo := bits.Mul64(uint64(v), unit)
	if hi != 0 || int64(lo) < 0 {
		return 0, strconv.ErrRange
	}
	return int64(lo), nil
}
