# platback — see README.md. Every target installs the pinned tools it needs
# into .tools/bin (git-ignored) first.

.PHONY: demo e2e test test-openbao tools bench vet image

demo:
	scripts/demo.sh

test:
	scripts/test.sh

# The end-to-end test alone (part of make test): two stacks, Vault, MinIO,
# a scheduled run, run-once, a wipe and a restore, verbose.
e2e:
	scripts/tools.sh restic minio vault
	go test -count=1 -timeout 40m -run '^TestEndToEnd$$' -v ./cmd/sidecar

# The same suite with OpenBao instead of HashiCorp Vault as the Vault server.
test-openbao:
	PLATBACK_VAULT=openbao scripts/test.sh

tools:
	scripts/tools.sh

# The whole sidecar against plain restic, side by side (bench/README.md): a
# ~1 GB volume and a ~400 MB PostgreSQL dump, 3 interleaved rounds, a table of
# min/median and ratios. BENCH_FLAGS=-quick: the one-minute version.
bench:
	scripts/tools.sh restic minio
	go run ./bench $(BENCH_FLAGS)

# The Go benchmark of package backup: the engine against plain restic on a
# local repository, no Docker.
.PHONY: bench-go
bench-go:
	scripts/tools.sh restic minio
	go test -run '^$$' -bench . -benchtime 1x -timeout 60m ./backup/

vet:
	gofmt -l . | (! grep .)
	go vet ./...

# The platback/sidecar image (FROM scratch; nothing is pulled).
image:
	scripts/tools.sh restic
	go run ./cmd/build-image
