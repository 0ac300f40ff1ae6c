package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/platback/platback/internal/testbed/dockerbed"
)

// scale is the size of the data: the volume's files and the database.
type scale struct {
	Name  string
	Files int   // files in the volume
	Bytes int64 // their total size
	// Rows of the database's big table: about 210 bytes of pg_dumpall
	// output each.
	Rows int
}

var (
	fullScale  = scale{Name: "full", Files: 4000, Bytes: 1_000_000_000, Rows: 1_950_000}
	quickScale = scale{Name: "quick", Files: 400, Bytes: 100_000_000, Rows: 195_000}
)

// dataVersion is part of the recipe: bump it when the generators change.
const dataVersion = 1

// seed makes the data the same on every machine and every run.
var seed = [32]byte{'p', 'l', 'a', 't', 'b', 'a', 'c', 'k', '-', 'b', 'e', 'n', 'c', 'h'}

// recipe names the data of a scale: the cached volumes carry it, so data of
// another recipe is never reused.
func (s scale) recipe() string {
	h := sha256.Sum256(fmt.Appendf(nil, "v%d %x %+v %s %s", dataVersion, seed, s, strings.Join(words(), " "), pgSQL(s, "")))
	return s.Name + "-" + hex.EncodeToString(h[:])[:10]
}

// The cached data volumes of a recipe.
func dataVolumeName(recipe string) string { return "platback-bench-data-" + recipe }
func pgVolumeName(recipe string) string   { return "platback-bench-pg-" + recipe }

// markerFile is written last into the data volume: its content is the
// recipe of complete data.
const markerFile = ".platback-bench"

// fileMTime is every generated file's modification time.
var fileMTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// ensureDataVolume returns the volume holding the scale's files and its
// directory on the host, generating the files when the volume is new or
// incomplete.
func (b *bench) ensureDataVolume(ctx context.Context, s scale, recipe string) (name, dir string, err error) {
	name = dataVolumeName(recipe)
	v, err := ensureCacheVolume(ctx, b.cli, name, recipe)
	if err != nil {
		return "", "", err
	}
	dir = v
	if got, _ := os.ReadFile(filepath.Join(dir, markerFile)); string(got) == recipe {
		b.logf("data volume %s: reused (%d files, %s)", name, s.Files, mb(s.Bytes))
		return name, dir, nil
	}
	b.logf("data volume %s: generating %d files, %s", name, s.Files, mb(s.Bytes))
	start := time.Now()
	if err := generateTree(dir, s); err != nil {
		return "", "", fmt.Errorf("generate the volume's files in %s: %w", dir, err)
	}
	b.logf("data volume %s: generated in %s", name, time.Since(start).Round(100*time.Millisecond))
	return name, dir, nil
}

// ensureCacheVolume creates a cached data volume unless it exists and
// returns its directory on the host, which the bench must be able to read.
func ensureCacheVolume(ctx context.Context, cli *client.Client, name, recipe string) (string, error) {
	v, err := cli.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		_, err = cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name,
			Labels: map[string]string{benchLabel: "1", cacheLabel: recipe}})
		if err != nil {
			return "", fmt.Errorf("create volume %s: %w", name, err)
		}
		v, err = cli.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	}
	if err != nil {
		return "", fmt.Errorf("inspect volume %s: %w", name, err)
	}
	dir := v.Volume.Mountpoint
	if _, err := os.ReadDir(dir); err != nil {
		return "", fmt.Errorf("the bench reads and writes volumes where the engine keeps them (%s), as restic on the host would: run it as root on the Docker host: %w", dir, err)
	}
	return dir, nil
}

// generateTree replaces what dir holds with the scale's files: Files files
// of Bytes bytes in all, 10 per directory, 10 directories per top-level
// directory, sizes log-uniform between 1 KB and 2.5 MB (scaled to the
// total); every other file is random bytes (incompressible), the others
// text made of a small vocabulary (compressible). The same seed gives the
// same tree, byte for byte.
func generateTree(dir string, s scale) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewChaCha8(seed))
	sizes := fileSizes(rng, s)
	vocab := words()
	buf := bufio.NewWriterSize(nil, 1<<20)
	for i, size := range sizes {
		name := filePath(i)
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		buf.Reset(f)
		if i%2 == 0 {
			err = writeRandom(buf, rng, size)
		} else {
			err = writeText(buf, rng, vocab, size)
		}
		if err == nil {
			err = buf.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if err := os.Chtimes(p, fileMTime, fileMTime); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, markerFile), []byte(s.recipe()), 0o644)
}

// filePath is the path of file i in the tree.
func filePath(i int) string {
	ext := ".bin"
	if i%2 == 1 {
		ext = ".txt"
	}
	return fmt.Sprintf("d%03d/e%d/f%05d%s", i/100, i/10%10, i, ext)
}

// fileSizes draws the sizes and scales them to s.Bytes in all.
func fileSizes(rng *rand.Rand, s scale) []int64 {
	const lo, hi = 1e3, 2.5e6
	raw := make([]float64, s.Files)
	var sum float64
	for i := range raw {
		raw[i] = math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
		sum += raw[i]
	}
	sizes := make([]int64, s.Files)
	var total int64
	for i := range raw {
		sizes[i] = int64(raw[i] * float64(s.Bytes) / sum)
		total += sizes[i]
	}
	sizes[len(sizes)-1] += s.Bytes - total
	return sizes
}

func writeRandom(w *bufio.Writer, rng *rand.Rand, n int64) error {
	var chunk [64 << 10]byte
	for n > 0 {
		k := min(n, int64(len(chunk)))
		for i := int64(0); i < k; i += 8 {
			v := rng.Uint64()
			for j := int64(0); j < 8 && i+j < k; j++ {
				chunk[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := w.Write(chunk[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// writeText writes n bytes of lines of words drawn from vocab.
func writeText(w *bufio.Writer, rng *rand.Rand, vocab []string, n int64) error {
	var written int64
	col := 0
	for written < n {
		v := rng.Uint64()
		for j := 0; j < 8 && written < n; j++ {
			word := vocab[byte(v>>(8*j))]
			sep := byte(' ')
			if col++; col == 12 {
				sep, col = '\n', 0
			}
			if rest := n - written; int64(len(word)+1) > rest {
				word = strings.Repeat("x", int(rest-1))
				sep = '\n'
			}
			w.WriteString(word)
			w.WriteByte(sep)
			written += int64(len(word) + 1)
		}
	}
	return nil
}

// words is the text files' vocabulary: 256 made-up words of 2 to 9
// letters, the same on every run.
func words() []string {
	rng := rand.New(rand.NewPCG(12, 34))
	out := make([]string, 256)
	for i := range out {
		b := make([]byte, 2+rng.IntN(8))
		for j := range b {
			b[j] = byte('a' + rng.IntN(26))
		}
		out[i] = string(b)
	}
	return out
}

// pgSQL creates the database's tables and fills them, in one transaction
// that ends by recording the recipe (an interrupted load leaves no
// recipe, and the next run loads again). generate_series and md5: the
// same rows on every run.
func pgSQL(s scale, recipe string) string {
	users := max(s.Rows/20, 1)
	return fmt.Sprintf(`
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_posts, bench_users, bench_meta;
BEGIN;
CREATE TABLE bench_users (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, created timestamptz NOT NULL);
INSERT INTO bench_users
  SELECT i, 'user ' || i, 'user' || i || '@example.org', timestamptz '2024-01-01 00:00:00+00' + i * interval '17 minutes'
  FROM generate_series(1::bigint, %[1]d) i;
CREATE TABLE bench_posts (id bigint PRIMARY KEY, user_id int NOT NULL REFERENCES bench_users, created timestamptz NOT NULL, title text NOT NULL, body text NOT NULL);
INSERT INTO bench_posts
  SELECT i, 1 + (i * 7919) %% %[1]d, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
         'post ' || md5(i::text),
         md5((i * 31)::text) || ' ' || md5((i * 37)::text) || ' ' || md5((i * 41)::text) || ' ' || md5((i * 131)::text)
  FROM generate_series(1::bigint, %[2]d) i;
CREATE TABLE bench_meta (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO bench_meta VALUES ('recipe', '%[3]s');
COMMIT;
CHECKPOINT;
`, users, s.Rows, recipe)
}

// pgPassword is the bench database's superuser password.
const pgPassword = "platback-bench"

// ensureDatabase fills the database of the running postgres container db
// unless it already holds the recipe's data.
func (b *bench) ensureDatabase(ctx context.Context, db string, s scale, recipe string) error {
	res, err := dockerbed.TryExec(ctx, b.cli, db, dockerbed.ExecOptions{},
		"psql", "--username", "postgres", "--no-psqlrc", "-At", "-c", "SELECT value FROM bench_meta WHERE key = 'recipe'")
	if err != nil {
		return err
	}
	if strings.TrimSpace(res.Stdout) == recipe {
		b.logf("database: reused (%d rows)", s.Rows)
		return nil
	}
	b.logf("database: loading %d rows", s.Rows)
	start := time.Now()
	res, err = dockerbed.TryExec(ctx, b.cli, db, dockerbed.ExecOptions{Stdin: pgSQL(s, recipe), Timeout: 30 * time.Minute},
		"psql", "--username", "postgres", "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-")
	if err != nil {
		return fmt.Errorf("load the database: %w", err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("load the database: psql exit %d: %s", res.ExitCode, strings.TrimSpace(res.Output()))
	}
	b.logf("database: loaded in %s", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// mb formats a byte count in MB (10^6).
func mb(n int64) string {
	if n >= 10e9 {
		return fmt.Sprintf("%.0f GB", float64(n)/1e9)
	}
	if n >= 1e9 {
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	}
	return fmt.Sprintf("%.0f MB", float64(n)/1e6)
}
