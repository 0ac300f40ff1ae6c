package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"

	"github.com/platback/platback/discover"
	"github.com/platback/platback/internal/testbed"
	"github.com/platback/platback/internal/testbed/dbimage"
	"github.com/platback/platback/internal/testbed/dockerbed"
	"github.com/platback/platback/internal/toolpath"
)

// resticPassword is the password of every bench repository.
const resticPassword = "platback-bench-password"

// bench is one run of the bench.
type bench struct {
	o       options
	start   time.Time
	cli     *client.Client
	runID   string // in names: project, buckets, image tags
	tmp     string
	scale   scale
	s3      *testbed.MinIO
	restic  plainRestic
	images  []string // to remove at the end, in order
	stacks  []*stack
	sampler *rssSampler
	watch   *engineWatch
	rep     *report
	cleanup []func(context.Context) error

	// Set up by setUp.
	root, resticBin string
	countingImage   string
	env             map[string]string // the stacks' compose variables
	vol, pg         *side
	db              string // the postgres container
	dataDir         string // the data volume's directory on the host
}

// sides of a stack under test.
type side struct {
	stack   *stack
	sidecar string // the sidecar's container id
	calls   resticCalls
}

// run runs the bench and returns its report (partial when err is set,
// nil when it stopped before measuring anything).
func run(ctx context.Context, o options) (rep *report, err error) {
	b := &bench{o: o, start: time.Now(), scale: fullScale, sampler: newRSSSampler()}
	if o.Quick {
		b.scale = quickScale
	}
	defer func() {
		// Even when ctx was cancelled (Ctrl-C): clean up with a fresh one.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if cerr := b.close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
		}
	}()
	if err := b.setUp(ctx); err != nil {
		return nil, err
	}
	err = b.measure(ctx)
	b.logf("measured; cleaning up")
	return b.rep, err
}

func randomID() string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// setUp builds the images, the data and the stacks, and starts MinIO.
func (b *bench) setUp(ctx context.Context) error {
	root, err := toolpath.Root()
	if err != nil {
		return err
	}
	resticBin, err := toolpath.Pinned("restic")
	if err != nil {
		return fmt.Errorf("%w (scripts/tools.sh restic minio installs the tools)", err)
	}
	if _, err := toolpath.Pinned("minio"); err != nil {
		return fmt.Errorf("%w (scripts/tools.sh restic minio installs the tools)", err)
	}
	if b.cli, err = discover.NewClient(); err != nil {
		return err
	}
	b.cleanup = append(b.cleanup, func(context.Context) error { return b.cli.Close() })
	b.runID = projectPrefix + randomID()
	recipe := b.scale.recipe()

	// One bench per recipe at a time: they would share the database's
	// data directory (and skew each other's timings).
	unlock, err := lock(ctx, filepath.Join(os.TempDir(), tmpPrefix+recipe+".lock"), func() {
		b.logf("waiting for another bench of the same data (%s) to finish", recipe)
	})
	if err != nil {
		return err
	}
	b.cleanup = append(b.cleanup, func(context.Context) error { unlock(); return nil })
	if err := sweep(ctx, b.cli, fullScale.recipe(), quickScale.recipe()); err != nil {
		b.logf("sweep of earlier runs' leftovers: %v", err)
	}
	if b.tmp, err = os.MkdirTemp("", tmpPrefix+"run-"); err != nil {
		return err
	}
	unlockTmp, err := lock(ctx, filepath.Join(b.tmp, "lock"), func() {})
	if err != nil {
		return err
	}
	b.cleanup = append(b.cleanup, func(context.Context) error { unlockTmp(); return os.RemoveAll(b.tmp) })
	b.logf("run %s: %s scale, %d round(s), temporary files in %s", b.runID, b.scale.Name, b.o.Rounds, b.tmp)

	// The slow parts side by side: the sidecar image (a go build), the
	// database image (kept between runs; minutes the first time), the
	// files, MinIO.
	var sidecarImage, dataVolume, dataDir string
	var dbs dbimage.Images
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if sidecarImage, err = b.buildSidecarImage(gctx, root, resticBin); err != nil {
			return err
		}
		b.logf("sidecar image %s built from %s", sidecarImage, root)
		if b.o.Count {
			b.countingImage, err = b.buildCountingImage(gctx, root, sidecarImage, resticBin)
		}
		return err
	})
	g.Go(func() error {
		var err error
		dbs, err = dbimage.Ensure(gctx, b.cli, dbimage.Options{})
		return err
	})
	g.Go(func() error {
		var err error
		dataVolume, dataDir, err = b.ensureDataVolume(gctx, b.scale, recipe)
		return err
	})
	g.Go(func() error {
		var err error
		if b.s3, err = testbed.NewMinIO(filepath.Join(b.tmp, "minio")); err != nil {
			return fmt.Errorf("start MinIO: %w", err)
		}
		b.cleanup = append(b.cleanup, func(context.Context) error { b.s3.Close(); return nil })
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	pgVolume := pgVolumeName(recipe)
	if _, err := ensureCacheVolume(ctx, b.cli, pgVolume, recipe); err != nil {
		return err
	}
	b.restic = plainRestic{bin: resticBin, cacheDir: filepath.Join(b.tmp, "restic-cache"), host: "platback-bench",
		env: []string{"RESTIC_PASSWORD=" + resticPassword, "AWS_ACCESS_KEY_ID=" + b.s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + b.s3.SecretKey}}

	env := map[string]string{
		"SIDECAR_IMAGE": sidecarImage, "BASE_IMAGE": dbs.Base, "POSTGRES_IMAGE": dbs.Postgres,
		"DATA_VOLUME": dataVolume, "PG_VOLUME": pgVolume, "BENCH_OWNER": dockerbed.Owner(),
		// A bucket that does not exist: the daemon's start-up check
		// accepts it; every measured run names its own.
		"RESTIC_REPOSITORY": b.s3.RepoURL(b.runID+"-idle", ""),
		"RESTIC_PASSWORD":   resticPassword, "AWS_ACCESS_KEY_ID": b.s3.AccessKey, "AWS_SECRET_ACCESS_KEY": b.s3.SecretKey,
	}
	up := func(kind, yaml string) (*side, error) {
		port, err := testbed.FreeTCPPort()
		if err != nil {
			return nil, err
		}
		env := maps.Clone(env)
		env["METRICS_PORT"] = strconv.Itoa(port)
		project := b.runID + kind
		s, err := composeUp(ctx, filepath.Join(b.tmp, project), project, yaml, env)
		if s != nil {
			b.stacks = append(b.stacks, s)
		}
		if err != nil {
			return nil, err
		}
		id, err := s.container(ctx, b.cli, "backup")
		if err != nil {
			return nil, err
		}
		return &side{stack: s, sidecar: id}, nil
	}
	b.logf("starting the stacks")
	pg, err := up("pg", postgresStack)
	if err != nil {
		return err
	}
	var vol *side
	g, gctx = errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		vol, err = up("vol", volumeStack)
		return err
	})
	var db string
	g.Go(func() (err error) {
		if db, err = pg.stack.container(gctx, b.cli, "db"); err != nil {
			return err
		}
		if err := dbimage.WaitReady(gctx, b.cli, db, dbimage.Postgres); err != nil {
			return err
		}
		return b.ensureDatabase(gctx, db, b.scale, recipe)
	})
	if err := g.Wait(); err != nil {
		return err
	}
	for _, s := range []*side{vol, pg} {
		if err := waitLog(ctx, b.cli, s.sidecar, "start-up check passed", 2*time.Minute); err != nil {
			return fmt.Errorf("sidecar of %s: %w", s.stack.Project, err)
		}
		b.sampler.add(ctx, b.cli, s.sidecar, "sidecar")
	}
	b.env = env
	b.vol, b.pg, b.db, b.dataDir = vol, pg, db, dataDir
	b.root, b.resticBin = root, resticBin
	b.rep = b.newReport(ctx)
	return nil
}

// close removes everything the bench created, in reverse order of
// creation: the watch, the stacks, the images, MinIO, the temporary files.
func (b *bench) close(ctx context.Context) error {
	var errs []error
	if b.watch != nil {
		b.watch.stop()
	}
	downs := make([]error, len(b.stacks))
	var wg sync.WaitGroup
	for i, s := range b.stacks {
		wg.Go(func() { downs[i] = s.down(ctx) })
	}
	wg.Wait()
	errs = append(errs, downs...)
	if b.cli != nil {
		errs = append(errs, sweepWorkers(ctx, b.cli))
		for _, ref := range b.images {
			if _, err := b.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
				errs = append(errs, fmt.Errorf("remove image %s: %w", ref, err))
			}
		}
		if b.o.DropData && b.rep != nil {
			for _, v := range []string{dataVolumeName(b.scale.recipe()), pgVolumeName(b.scale.recipe())} {
				if _, err := b.cli.VolumeRemove(ctx, v, client.VolumeRemoveOptions{}); err != nil {
					errs = append(errs, fmt.Errorf("remove volume %s: %w", v, err))
				}
			}
		}
	}
	for i := len(b.cleanup) - 1; i >= 0; i-- {
		errs = append(errs, b.cleanup[i](ctx))
	}
	return errors.Join(errs...)
}

// machine describes where the bench runs, for the report's header.
func (b *bench) machine(ctx context.Context) []string {
	var mem string
	if s, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(s), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				mem = fmt.Sprintf("%.1f GB RAM", float64(kb)*1024/1e9)
			}
		}
	}
	cpu := ""
	if s, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(s), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	docker := "Docker ?"
	if v, err := b.cli.ServerVersion(ctx, client.ServerVersionOptions{}); err == nil {
		docker = "Docker Engine " + v.Version
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	commit := "unknown commit"
	if out, err := exec.Command("git", "-C", b.root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = "commit " + strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "-C", b.root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			commit += " + uncommitted changes"
		}
	}
	return []string{
		fmt.Sprintf("%s, %s", time.Now().Format("2006-01-02 15:04 MST"), commit),
		joinNonEmpty(", ", fmt.Sprintf("%d CPUs", runtime.NumCPU()), cpu, mem, "Linux "+strings.TrimSpace(string(kernel)), docker),
		resticVersion(b.resticBin) + ", MinIO (pinned, .tools/bin) on 127.0.0.1; sidecar with network_mode: host",
	}
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	s, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(s))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// warmUp reads the files and dumps the database once, untimed, so the
// first measured run of either side does not pay for a cold page cache.
func (b *bench) warmUp(ctx context.Context) error {
	start := time.Now()
	err := filepath.WalkDir(b.dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(io.Discard, f)
		return err
	})
	if err != nil {
		return err
	}
	res, err := dockerbed.TryExec(ctx, b.cli, b.db, dockerbed.ExecOptions{Timeout: 10 * time.Minute},
		"sh", "-c", "pg_dumpall --username postgres > /dev/null")
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("pg_dumpall: exit %d: %s", res.ExitCode, res.Output())
	}
	b.logf("warm-up (read the files, one pg_dumpall) in %s", time.Since(start).Round(100*time.Millisecond))
	return err
}

// bucket creates an empty bucket and returns its repository URL.
func (b *bench) bucket(ctx context.Context, name string) (string, error) {
	if err := b.s3.Client.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		return "", fmt.Errorf("make bucket %s: %w", name, err)
	}
	return b.s3.RepoURL(name, ""), nil
}

func (b *bench) removeBucket(ctx context.Context, name string) error {
	return b.s3.Client.RemoveBucketWithOptions(ctx, name, minio.RemoveBucketOptions{ForceDelete: true})
}
