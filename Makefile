# DSR Functions. `make run` runs the product locally; `make test` passes the tests.
SHELL := /bin/bash
GO ?= go
SAMPLE ?= small
FUZZTIME ?= 10s

.PHONY: run test build package bench vet fmt clean deps

node_modules/.bin/azurite-blob: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.bin/azurite-blob

build:
	$(GO) build -o bin/dsr ./cmd/dsr

## run: start Azurite, seed the sample data and serve the API on http://127.0.0.1:7071/api
#   (INDEX=1: every sample dataset keeps an identifier index, built at start; SAMPLE=large for a bigger sample)
run: deps build
	./scripts/azurite.sh
	$(if $(INDEX),DSR_SOURCES_CONFIG=sample/sources.indexed.json) ./bin/dsr local --sample $(SAMPLE)

## test: vet, format check, every test (each test package starts its own in-memory Azurite), short fuzz runs
test: deps
	./scripts/postgres-deps.sh
	./scripts/chromium-deps.sh
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	./scripts/fuzz.sh ./shared/match/ FuzzContainsEmailToken $(FUZZTIME)
	./scripts/fuzz.sh ./shared/dsr/ FuzzParseSubmission $(FUZZTIME)
	./scripts/fuzz.sh ./shared/funchost/ FuzzUnwrap $(FUZZTIME)
	./scripts/fuzz.sh ./shared/match/ FuzzPrefilter 5s
	./scripts/fuzz.sh ./shared/match/ FuzzMentionsEmail 5s
	./scripts/fuzz.sh ./shared/sources/ FuzzParseRecordJSON 5s
	./scripts/fuzz.sh ./shared/sources/blobdataset/ FuzzIterateNDJSON 5s
	./scripts/fuzz.sh ./shared/sources/blobdataset/ FuzzIterateCSV 5s
	./scripts/fuzz.sh ./shared/sources/blobdataset/ FuzzIterateJSONArray 5s
	./scripts/fuzz.sh ./shared/funchost/ FuzzInvocation 5s
	./scripts/fuzz.sh ./shared/funchost/ FuzzDecodeQueueMessage 5s
	./scripts/fuzz.sh ./shared/auth/ FuzzAuthenticate 5s
	./scripts/fuzz.sh ./shared/notify/ FuzzValidate 5s

## package: cross-build linux/amd64 and assemble the deployable zip in dist/
package:
	./scripts/package.sh

## bench: scan benchmarks side by side with grep -F and ripgrep (installed when missing, as root) on generated files
#   (64 MiB and 1 GiB, kept in $TMPDIR), peak memory and parallel scans, one access request end to end, and 200
#   concurrent access requests over the medium sample, Parquet discovery against DuckDB (npm ci installs it),
#   discovery fanned out over 1 to 16 invocations, discovery through the identifier index (184 MB of sample data and
#   1,000 small blobs); several minutes; results in BENCHMARKS.md
bench:
	GO=$(GO) ./scripts/bench.sh
	$(GO) test ./functions/ -run '^$$' -bench BenchmarkAccessEndToEnd -benchtime 5x -count 3 -timeout 30m
	$(GO) test ./functions/ -run '^$$' -bench BenchmarkConcurrentAccess -benchtime 1x -count 3 -timeout 30m
	$(GO) test ./shared/sources/blobdataset/ -run '^$$' -bench 'BenchmarkParquetDiscovery$$' -benchtime 3x -count 1 -timeout 60m
	$(GO) test ./shared/sources/blobdataset/ -run '^$$' -bench 'BenchmarkFanout$$' -benchtime 3x -count 1 -timeout 30m
	$(GO) test ./shared/sources/blobdataset/ -run '^$$' -bench 'BenchmarkIndexedAccess|BenchmarkIndexedManyBlobs' -benchtime 5x -count 1 -timeout 60m

## clean: stop the local Azurite started by `make run` and remove build output and its data
clean:
	@if [ -f .azurite/azurite.pid ]; then kill "$$(cat .azurite/azurite.pid)" 2>/dev/null || true; sleep 1; fi
	rm -rf bin dist .azurite .local/queue
