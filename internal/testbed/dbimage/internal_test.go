package dbimage

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseOneLine(t *testing.T) {
	text := `# comment
deb http://mirror.example/debian bookworm main contrib
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm-updates main # trailing
deb-src http://mirror.example/debian bookworm main
deb http://flat.example/repo ./
deb [broken http://x bookworm main

  deb http://mirror.example/debian-security bookworm-security main
`
	assert.Equal(t, []aptSource{
		{URI: "http://mirror.example/debian", Suite: "bookworm", Components: []string{"main", "contrib"}},
		{URI: "http://mirror.example/debian", Suite: "bookworm-updates", Components: []string{"main"}},
		{URI: "http://mirror.example/debian-security", Suite: "bookworm-security", Components: []string{"main"}},
	}, parseOneLine(text))
}

func TestParseDeb822(t *testing.T) {
	text := `Types: deb
# a comment inside
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
  non-free-firmware

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

types: deb
uris: http://lower.example/debian
suites: trixie
components: main`
	assert.Equal(t, []aptSource{
		{URI: "http://mirror.example/debian", Suite: "bookworm", Components: []string{"main"}},
		{URI: "http://mirror.example/debian", Suite: "bookworm-updates", Components: []string{"main"}},
		{URI: "http://mirror.example/debian-security", Suite: "bookworm-security", Components: []string{"main", "non-free-firmware"}},
		{URI: "http://lower.example/debian", Suite: "trixie", Components: []string{"main"}},
	}, parseDeb822(text))
}

func TestMirrorsFor(t *testing.T) {
	sources := []aptSource{
		{URI: "http://a/debian", Suite: "bookworm", Components: []string{"main"}},
		{URI: "http://a/debian", Suite: "bookworm", Components: []string{"main"}}, // duplicate
		{URI: "http://a/debian", Suite: "bookworm-updates", Components: []string{"main", "contrib"}},
		{URI: "http://a/debian", Suite: "bookwormish", Components: []string{"main"}},
		{URI: "http://a/debian", Suite: "trixie", Components: []string{"main"}},
		{URI: "http://b/other", Suite: "cloud-sdk-bookworm", Components: []string{"main"}},
		{URI: "http://a/debian", Suite: "bookworm-backports", Components: []string{"contrib"}},
	}
	assert.Equal(t, []string{
		"deb http://a/debian bookworm main",
		"deb http://a/debian bookworm-updates main contrib",
	}, mirrorsFor(sources, "bookworm"))
	assert.Empty(t, mirrorsFor(sources, "bullseye"))
}

func TestAptOptions(t *testing.T) {
	dump := strings.Join([]string{
		"APT=",
		"Acquire::Check-Valid-Until=false",
		"Acquire::Check-Date=false",
		"Acquire::http::Proxy=http://proxy:3128",
		"Acquire::http::Proxy::mirror.example=DIRECT",
		"Acquire::http::Timeout=30",
		"Acquire::Retries=3",
		`Acquire::https::Proxy=has "quote"`,
		"Dir::Etc=etc/apt",
	}, "\n")
	assert.Equal(t, []string{
		`Acquire::Check-Valid-Until "false"`,
		`Acquire::Check-Date "false"`,
		`Acquire::http::Proxy "http://proxy:3128"`,
		`Acquire::http::Proxy::mirror.example "DIRECT"`,
		`Acquire::Retries "3"`,
	}, aptOptions(dump))
}

func TestRecipeHashIsStable(t *testing.T) {
	h := Hash()
	assert.Regexp(t, `^[0-9a-f]{12}$`, h)
	assert.Equal(t, h, Hash())
	assert.NotEqual(t, h, baseHash())
	im := imagesFor(baseHash(), h)
	assert.Equal(t, "platback-test/postgres:"+h, im.Ref(Postgres))
	assert.Equal(t, "platback-test/mariadb:"+h, im.Ref(MariaDB))
	assert.Equal(t, "platback-test/dbbase:"+baseHash(), im.Base)
}

func TestMmdebstrapArgs(t *testing.T) {
	args := mmdebstrapArgs([]string{`Acquire::Check-Valid-Until "false"`}, "/w/rootfs/customize.sh",
		[]string{"deb http://a/debian bookworm main"})
	assert.Contains(t, args, "--mode=unshare")
	assert.Contains(t, args, "--include=postgresql-15,postgresql-client-15,mariadb-server,mariadb-client")
	assert.Contains(t, args, `--aptopt=Acquire::Check-Valid-Until "false"`)
	assert.Contains(t, args, "--customize-hook=/w/rootfs/customize.sh")
	assert.Equal(t, []string{"--", "bookworm", "-", "deb http://a/debian bookworm main"}, args[len(args)-4:])
}

func TestPruneSelection(t *testing.T) {
	img := func(id string, created int64, tags ...string) imageInfo {
		return imageInfo{ID: id, RepoTags: tags, Created: created}
	}
	list := []imageInfo{
		img("b1", 10, "platback-test/dbbase:b1"),
		img("p1", 11, "platback-test/postgres:e1"),
		img("m1", 11, "platback-test/mariadb:e1"),
		img("b2", 20, "platback-test/dbbase:b2"),
		img("p2", 21, "platback-test/postgres:e2"),
		img("m2", 21, "platback-test/mariadb:e2"),
		img("p3", 22, "platback-test/postgres:e3"), // same base, other engine settings
		img("d1", 5), // dangling: an import whose tagging was interrupted
		img("b4", 30, "platback-test/dbbase:b4"),
		img("p4", 31, "platback-test/postgres:e4", "someone/else:tag"),
		img("m4", 31, "platback-test/mariadb:e4"),
	}
	current := imagesFor("b4", "e4")
	assert.Equal(t, []string{
		"platback-test/postgres:e2", "platback-test/postgres:e1", "platback-test/mariadb:e1",
		"platback-test/dbbase:b1", "d1",
	}, pruneTargets(list, current))

	all := removalOrder(list)
	assert.Len(t, all, 12)
	assert.Equal(t, "d1", all[len(all)-1])
	for i, ref := range all[:len(all)-1] {
		if i < 8 {
			assert.NotContains(t, ref, "dbbase", "engine images come before the bases")
		} else {
			assert.Contains(t, ref, "dbbase")
		}
	}
}
