# pgward — see README.md. Every target works on a fresh machine: it installs what it needs.
SHELL := /bin/bash
GO ?= go
BIN := bin/pgward
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: build test test-deps vet demo bench bench-format2 bench-delta bench-go clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/pgward

# Installs PostgreSQL 13-18 server binaries (15 from Debian) and versitygw (the S3 server of the S3
# tests) into .cache/, and headless Chromium (Debian's package; the daemon's status page test).
test-deps:
	scripts/install-test-deps.sh
	scripts/install-versitygw.sh
	scripts/install-chromium.sh

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

# Go benchmarks of the backup pipeline, codecs, crypto and storage.
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./engine/ ./compress/ ./crypt/ ./repo/... ./engine/expire/

clean:
	rm -rf bin
