package main

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/platback/platback/internal/runner"
)

func TestPrintResult(t *testing.T) {
	var b bytes.Buffer
	printResult(&b, runner.Result{Duration: 3 * time.Second, Targets: []runner.TargetResult{
		{Path: "/volumes/app/data", Kind: "volume", SnapshotID: "0123456789abcdef", FilesNew: 3, BytesAdded: 1000},
		{Path: "/databases/db/all_databases.sql", Kind: "mariadb", Err: errors.New("x"), Error: "mariadb-dump exited with status 2"},
	}})
	out := b.String()
	assert.Contains(t, out, "01234567")
	assert.Contains(t, out, "mariadb-dump exited with status 2")
	assert.Contains(t, out, "FAILED: 2 target(s)")
}
