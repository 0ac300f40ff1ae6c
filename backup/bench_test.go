package backup_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/platback/platback/backup"
	"github.com/platback/platback/internal/testbed"
)

// BenchmarkEngineVsPlainRestic backs up the same ~1 GB tree of mixed files
// with plain `restic backup` and with the engine, interleaved, each into a
// fresh local repository, and reports engine/plain for the first run and for
// an unchanged second run (target: at most 1.05). Run with make bench.
func BenchmarkEngineVsPlainRestic(b *testing.B) {
	src := b.TempDir()
	makeBenchTree(b, src)
	restic := testbed.Tool(b, "restic")
	const rounds = 3
	var plain1, plain2, engine1, engine2 []time.Duration
	for range b.N {
		for i := range rounds {
			// Alternate who goes first, so a warm page cache favours neither.
			order := []func(){
				func() {
					a, c := plainRestic(b, restic, src)
					plain1, plain2 = append(plain1, a), append(plain2, c)
				},
				func() {
					a, c := engineBackup(b, restic, src)
					engine1, engine2 = append(engine1, a), append(engine2, c)
				},
			}
			if i%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, f := range order {
				f()
			}
		}
	}
	r1 := float64(median(engine1)) / float64(median(plain1))
	r2 := float64(median(engine2)) / float64(median(plain2))
	b.ReportMetric(r1, "ratio-first")
	b.ReportMetric(r2, "ratio-unchanged")
	fmt.Printf("engine/plain restic, first run:     %.3f (median engine %s, plain %s)\n", r1, median(engine1), median(plain1))
	fmt.Printf("engine/plain restic, unchanged run: %.3f (median engine %s, plain %s)\n", r2, median(engine2), median(plain2))
}

func plainRestic(b *testing.B, restic, src string) (first, second time.Duration) {
	dir := b.TempDir()
	env := append(os.Environ(), "RESTIC_PASSWORD=bench", "RESTIC_REPOSITORY="+filepath.Join(dir, "repo"))
	run := func(args ...string) time.Duration {
		cmd := exec.Command(restic, append(args, "--cache-dir", filepath.Join(dir, "cache"))...)
		cmd.Env = env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("restic %v: %v\n%s", args, err, out)
		}
		return time.Since(start)
	}
	run("init")
	return run("backup", "-q", "--host", "bench", src), run("backup", "-q", "--host", "bench", src)
}

func engineBackup(b *testing.B, restic, src string) (first, second time.Duration) {
	dir := b.TempDir()
	r, err := backup.Open(context.Background(), filepath.Join(dir, "repo"), backup.Options{Restic: restic,
		Env: map[string]string{"RESTIC_PASSWORD": "bench"}, Host: "bench", CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.EnsureRepo(context.Background()); err != nil {
		b.Fatal(err)
	}
	run := func() time.Duration {
		start := time.Now()
		if _, err := r.Backup(context.Background(), []string{src}, backup.BackupOptions{}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	return run(), run()
}

// makeBenchTree writes about 1 GB: 20 random 30 MB files (incompressible,
// like media) and 4000 files of 100 KB of text-like data (compressible).
func makeBenchTree(b *testing.B, dir string) {
	rng := rand.NewChaCha8([32]byte{42})
	big := make([]byte, 30<<20)
	for i := range 20 {
		_, _ = rng.Read(big)
		writeFile(b, filepath.Join(dir, "media", fmt.Sprintf("file-%02d.bin", i)), big)
	}
	words := []byte("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ")
	small := make([]byte, 100<<10)
	for i := range 4000 {
		for j := range small {
			small[j] = words[(j*7+i*13+j/97)%len(words)]
		}
		writeFile(b, filepath.Join(dir, "docs", fmt.Sprintf("d%02d", i%40), fmt.Sprintf("doc-%04d.txt", i)), small)
	}
}

func writeFile(b *testing.B, p string, data []byte) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
