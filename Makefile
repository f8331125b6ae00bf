# dynoseal developer tasks. Everything runs on local emulators bound to
# 127.0.0.1 (see scripts/services.sh); no AWS account or Docker is needed.
#
#   make deps          npm ci (dynalite) when needed, then build bin/ tools
#   make lint          gofmt, go vet and staticcheck on the three modules (root, dynotest/, tests/)
#   make unit          root module tests (no network)
#   make integration   tests/ and dynotest/ modules against moto, then against dynalite + local-kms
#   make test          deps + unit + integration
#   make demo          examples/quickstart against moto
#   make rotate-demo   examples/rotate against moto: a mixed table migrated, then the policies turned on
#   make bench         benchmarks of enc and repo (in-memory KMS), six runs each, through benchstat,
#                      then the library's time against the raw AWS SDK (bin/benchratio)
#   make interop-fixture  re-make tests/interop/testdata/python-fixture.json (Python, on local-kms)
#
# Variables: BACKENDS (default "moto strict"; a subset runs only those, and
# then a test skipped on all of them is listed, not failed), ALLOW_SKIP
# (regexp of tests that may be skipped on every backend, e.g. Docker-only
# suites), GOTEST_FLAGS.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
# Keep the steps in order even under make -j: they start and stop services.
.NOTPARALLEL:

ALL_BACKENDS := moto strict
BACKENDS ?= $(ALL_BACKENDS)
# Modules whose tests run on every backend.
IT_MODULES := tests dynotest
ALLOW_SKIP ?=
GOTEST_FLAGS ?=
TMPOUT := .tmp
NPM_STAMP := node_modules/.dynoseal-npm-ci

.PHONY: deps tools npm lint fmt-check vet staticcheck shellcheck unit integration test demo rotate-demo bench interop-fixture clean

# ------------------------------------------------------------------ deps

$(NPM_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

npm: $(NPM_STAMP)

# go build is incremental, so these always run and stay current.
tools:
	@mkdir -p bin
	cd tests && go build -o ../bin/staticcheck honnef.co/go/tools/cmd/staticcheck
	cd tests && go build -o ../bin/localkms ./cmd/localkms
	cd tests && go build -o ../bin/benchstat golang.org/x/perf/cmd/benchstat
	cd tests && go build -o ../bin/benchratio ./cmd/benchratio

deps: npm tools

# ------------------------------------------------------------------ lint

GO_FILES_CMD := find . \( -path ./node_modules -o -path ./.git -o -path ./.tmp -o -path ./bin \) -prune -o -name '*.go' -type f -print

fmt-check:
	@out=$$($(GO_FILES_CMD) | xargs -r gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	go vet ./...
	cd dynotest && go vet ./...
	cd tests && go vet ./...

staticcheck: tools
	bin/staticcheck ./...
	cd dynotest && ../bin/staticcheck ./...
	cd tests && ../bin/staticcheck ./...

# Optional: only where shellcheck is installed (it is not part of the image).
shellcheck:
	@if command -v shellcheck >/dev/null; then shellcheck -x scripts/*.sh .ci/run; \
	else echo "shellcheck not installed: skipping shell lint"; fi

lint: fmt-check vet staticcheck shellcheck

# ------------------------------------------------------------------ tests

unit:
	go test -race -count=1 $(GOTEST_FLAGS) ./...

# Runs the IT_MODULES once per backend, keeps going when one fails, and
# then prints the summary (failed tests' output, per-backend counts, totals).
integration: deps
	@mkdir -p $(TMPOUT) && rm -f $(TMPOUT)/it-*.json
	cd tests && go build -o ../bin/testsummary ./cmd/testsummary
	@status=0; \
	for b in $(BACKENDS); do \
		echo "=== integration tests on $$b"; \
		rc=0; scripts/with-services.sh $$b -- sh -c 'rc=0; out=$$PWD/$(TMPOUT)/it-'"$$b"'.json; : > "$$out"; \
			for m in $(IT_MODULES); do (cd $$m && go test -race -count=1 $(GOTEST_FLAGS) -json ./... >> "$$out") || rc=$$?; done; exit $$rc' || rc=$$?; \
		if [ $$rc -gt 128 ]; then echo "=== interrupted"; exit $$rc; fi; \
		if [ $$rc -ne 0 ]; then echo "=== integration tests on $$b FAILED (exit $$rc)"; status=1; fi; \
	done; \
	args=""; for b in $(BACKENDS); do args="$$args $$b=$(TMPOUT)/it-$$b.json"; done; \
	bin/testsummary -backends '$(ALL_BACKENDS)' $(if $(ALLOW_SKIP),-allow-skip '$(ALLOW_SKIP)') $$args || status=1; \
	exit $$status

test: deps unit integration

# Benchmarks of the library's own work (in-memory KMS, no network), six runs
# each, summarised by benchstat. Compare two states of the code with
# `bin/benchstat old.txt new.txt`.
#
# RATIO_BENCH are the benchmarks that race the library against the raw AWS
# SDK (repo/bench_raw_test.go); they run after the others, six times in
# shorter runs, and bin/benchratio prints their ratios next to the targets
# (it reports and exits 0; `bin/benchratio -strict FILE` fails when over).
# Empty BENCH or RATIO_BENCH leaves that part out.
BENCH ?= .
RATIO_BENCH ?= VsRaw|SealField|BeaconLookup
RATIO_BENCHTIME ?= 300ms
bench: tools
	@mkdir -p $(TMPOUT) && : > $(TMPOUT)/bench.txt
	$(if $(BENCH),go test -run '^$$' -bench '$(BENCH)' $(if $(RATIO_BENCH),-skip '$(RATIO_BENCH)') -benchmem -count 6 ./enc ./repo >> $(TMPOUT)/bench.txt)
	$(if $(RATIO_BENCH),go test -run '^$$' -bench '$(RATIO_BENCH)' -benchmem -count 6 -benchtime $(RATIO_BENCHTIME) ./repo >> $(TMPOUT)/bench.txt)
	bin/benchstat $(TMPOUT)/bench.txt
	bin/benchratio $(TMPOUT)/bench.txt

demo:
	scripts/with-services.sh moto -- go run ./examples/quickstart

rotate-demo:
	scripts/with-services.sh moto -- go run ./examples/rotate

# Values sealed by the Python implementation of docs/format.md, under a key
# whose material is imported (local-kms can; moto cannot), for
# tests/integration/interop_test.go. See tests/interop/README.md.
interop-fixture: deps
	scripts/with-services.sh strict -- python3 tests/interop/interop_fixture.py make-fixture tests/interop/testdata/python-fixture.json

clean:
	rm -rf bin $(TMPOUT)
