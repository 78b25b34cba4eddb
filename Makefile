# pgward — see README.md. Every target works on a fresh machine: it installs what it needs.
SHELL := /bin/bash
GO ?= go
BIN := bin/pgward
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: build test test-deps vet demo bench bench-format2 bench-delta bench-remote bench-s3-restore bench-go clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/pgward

# Installs PostgreSQL 13-18 server binaries (15 from Debian), versitygw (the S3 server of the
# S3 tests), Azurite (Azure) and fake-gcs-server (GCS) into .cache/, OpenSSH's sshd (SFTP) and
# headless Chromium (the daemon's status page test) from Debian. Azurite (npm) installs while the
# Go servers build; apt installs run one at a time.
test-deps:
	scripts/install-test-deps.sh
	scripts/install-sshd.sh
	scripts/install-chromium.sh
	{ scripts/install-azurite.sh & a=$$!; scripts/install-versitygw.sh && scripts/install-fake-gcs-server.sh; r=$$?; wait $$a && exit $$r; }

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }

# Every test: unit tests and end-to-end tests against real PostgreSQL clusters.
test: test-deps vet
	$(GO) test -count=1 -timeout 25m ./...

# Back up a throwaway cluster to a local repository, restore it, start it, compare.
demo: build
	scripts/demo.sh $(BIN)

# pgward side by side with pgBackRest and pg_basebackup on one PostgreSQL 15 cluster
# (BENCH_SCALE, default 100; installs pgBackRest). See docs/benchmarks.md.
bench:
	bench/run.sh

# Repository format 2: sparse updates, page-delta restores, many small files, PG 17
# INCREMENTAL, peak memory at two sizes (BENCH_SCALE, default 50). See docs/benchmarks.md.
bench-format2:
	bench/format2.sh

# Delta restore after a 5% change against a full restore (BENCH_SCALE, default 50).
# See docs/benchmarks.md.
bench-delta:
	bench/delta.sh

# Backup and restore through each kind of repository: local, S3 (versitygw), Azure
# (Azurite), GCS (fake-gcs-server), SFTP (sshd), all on 127.0.0.1 (SCALE, NOISE_MB, REPS,
# JOBS, KINDS). See docs/benchmarks.md.
bench-remote: test-deps
	bench/remote.sh

# Restore from S3 (versitygw over TLS on 127.0.0.1) against pgBackRest from the same server
# (SCALE, REPS, JOBS, KEEPALIVE). See docs/benchmarks.md.
bench-s3-restore: test-deps
	bench/s3-restore.sh

# Go benchmarks of the backup pipeline, codecs, crypto and storage.
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./engine/ ./compress/ ./crypt/ ./repo/... ./engine/expire/

# Man pages (section 1) of every command, from the command tree, into bin/man.
man: build
	$(BIN) man bin/man

# Install the binary, its man pages and shell completions under PREFIX (default /usr/local).
PREFIX ?= /usr/local
install: build man
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/pgward
	install -m 0644 bin/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	$(BIN) completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/pgward

clean:
	rm -rf bin
