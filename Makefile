# The project's commands. `make test` is what CI runs (.ci/run).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

GO ?= go
STATICCHECK = "$$($(GO) env GOPATH)/bin/staticcheck"
# Go files gofmt checks: all but test inputs.
GOFILES = find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print0

.PHONY: test deps lint fmt-check vet staticcheck fmt build bench bench-data bench-day demo

## test: install what tests need, lint, then run every test with the race detector
# -parallel: most of cmd/settle's tests wait - on the simulated providers'
# polls, on settle as a process, on a lock or a stop - more than they
# compute; at go test's default (GOMAXPROCS, 2 here) two waiting tests held
# the package while the machine's CPU was half idle (cmd/settle alone:
# 694 s at 2, 460 s at 4, one run after the other in session 43, each
# beside other work). Not more: each settle run holds up to 16 ledger
# connections (ledger.maxConns), and at 4 the whole suite peaked at 87
# connections of PostgreSQL's default 100.
TEST_PARALLEL ?= 3
# -timeout is per package: cmd/settle takes 8-14 min on this machine alone,
# and took 25.6 min beside three other jobs (session 52): 30m left it too
# little margin on a busy CI machine.
test: deps
	@$(MAKE) --no-print-directory lint
	$(GO) test -race -count=1 -parallel $(TEST_PARALLEL) -timeout 45m ./...

## deps: make sure PostgreSQL, OpenSSH and staticcheck are there (scripts/test-deps.sh)
deps:
	@bash scripts/test-deps.sh

## lint: gofmt check, go vet, staticcheck
lint: fmt-check vet staticcheck

fmt-check:
	@unformatted=$$($(GOFILES) | xargs -0r gofmt -l); \
	if [[ -n $$unformatted ]]; then \
		echo "gofmt: these files are not formatted (run make fmt):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

vet:
	$(GO) vet ./...

staticcheck:
	@if [[ ! -x $(STATICCHECK) ]]; then echo "staticcheck missing: run make deps"; exit 1; fi
	$(STATICCHECK) ./...

## fmt: format every Go file
fmt:
	$(GOFILES) | xargs -0r gofmt -w

## build: build the binaries into bin/
build:
	$(GO) build -o bin/ ./cmd/...

## bench: run the benchmarks (no tests); BENCH_ORDERS=1000000 for the full day of BenchmarkDataPath
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -timeout 60m ./...

## bench-data: the day's data path against psql (BenchmarkDataPath) and the ledger work per order of upload and distribute at two day sizes (BenchmarkDayLedger)
bench-data:
	$(GO) test -run='^$$' -bench='DataPath' -benchtime=1x -timeout 60m -v ./cmd/settle
	$(GO) test -run='^$$' -bench='DayLedger' -benchtime=1x -timeout 60m -v ./pipeline/ledger

## bench-day: settle a seeded day (BENCH_ORDERS, default 100000) end to end against paysim as a process with its timing model (latency, processing delays, rate limits); prints per stage and provider (with the database's CPU time per 1,000 orders), the signing ceiling, peak RSS, the day's physical bound and the issue's targets (scripts/benchday)
BENCH_ORDERS ?= 100000
bench-day:
	BENCH_ORDERS=$(BENCH_ORDERS) $(GO) run ./scripts/benchday

## demo: settle a day end to end against a throwaway database and the simulator
demo:
	$(GO) run ./cmd/settle demo
