package doctor_test

import (
	"context"
	"fmt"
	"os"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/doctor"
	"github.com/platback/platback/schedule"
	"github.com/platback/platback/vaultcreds"
)

// Check a stack's whole chain as `sidecar doctor` does, from the
// environment, and print the table.
func ExampleRun() {
	creds, err := vaultcreds.SettingsFromEnv(os.Getenv) // Vault AppRole, or RESTIC_PASSWORD, AWS_* …
	if err != nil {
		fmt.Println(err)
		return
	}
	docker, err := discover.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer docker.Close()
	rep := doctor.Run(context.Background(), doctor.Options{
		Docker:      docker,
		Discover:    discover.Options{Self: discover.SelfFromEnv(os.Getenv)},
		Credentials: creds,
		Repository:  os.Getenv("RESTIC_REPOSITORY"),
		Schedule:    schedule.Spec{Cron: "0 2 * * *", TZ: "Europe/Paris"},
	})
	_ = rep.WriteTable(os.Stdout)
	if !rep.OK() {
		os.Exit(1)
	}
}

// A report is a list of checks; the table shows each with its fix.
func ExampleReport_WriteTable() {
	rep := doctor.Report{
		{Name: "vault fields", Status: doctor.Pass, Detail: "secret ansible/data/stackback_shop: password=RESTIC_PASSWORD (values not shown)"},
		{Name: "s3 lifecycle", Status: doctor.Fail, Detail: `rule "delete-after-30-days" expires objects after 30 days`, Fix: "mc ilm rule rm --id delete-after-30-days ALIAS/shop"},
		{Name: "snapshots", Status: doctor.Skip, Detail: "needs the repository (check repository)"},
	}
	_ = rep.WriteTable(os.Stdout)
	fmt.Println("ok:", rep.OK())
	// Output:
	// STATUS  CHECK         DETAIL                                                                           FIX
	// PASS    vault fields  secret ansible/data/stackback_shop: password=RESTIC_PASSWORD (values not shown)  -
	// FAIL    s3 lifecycle  rule "delete-after-30-days" expires objects after 30 days                        mc ilm rule rm --id delete-after-30-days ALIAS/shop
	// SKIP    snapshots     needs the repository (check repository)                                          -
	// 1 pass, 0 warn, 1 fail, 1 skip: FAILED
	// ok: false
}
