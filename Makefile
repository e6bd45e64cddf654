# Aspen. `make sweep` is the main job; `make test` is the fast test run.
SEEDS ?= 30
START ?= 1
PARALLEL ?= $(shell nproc 2>/dev/null || echo 2)
GO ?= go
BIN := bin/aspen

.PHONY: all build test sweep sweep-long sweep-coverage planted-sweep determinism bench bench-etcd bench-latency vet ci clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/aspen

# Fast tests: unit, property and a few seeds of every scenario; then the
# planted-bug tests, which need a build that can plant defects (core/bugs).
test:
	$(GO) test ./...
	$(GO) test -tags aspenbugs -run 'Planted' ./sim/ ./core/... ./runtime/worker/

# Seeded sweep of every scenario; SEEDS=100 for the full acceptance sweep.
sweep: build
	$(BIN) sim sweep --scenario scenarios --seeds $(SEEDS) --start-seed $(START) --parallel $(PARALLEL)

# A long sweep, for nightly runs or before a release.
sweep-long: build
	$(BIN) sim sweep --scenario scenarios --seeds 1000 --start-seed $(START) --parallel $(PARALLEL)

# Reach: a sweep of every scenario (100 seeds unless SEEDS is given) by a
# binary that counts which core/ statements run, then the share reached per
# package and the core functions never reached (tools/corecover says what it
# leaves out). cmd/aspen is instrumented too: a -cover binary whose main
# package is not writes no counters. Counters are written on exit even when
# runs fail; the report is printed, then the target exits with the sweep's status.
COVER_BIN := bin/aspen-cover
COVER_DIR := artifacts/coverage
sweep-coverage: SEEDS := $(if $(filter file,$(origin SEEDS)),100,$(SEEDS))
sweep-coverage:
	$(GO) build -cover -coverpkg=./core/...,./cmd/aspen -o $(COVER_BIN) ./cmd/aspen
	rm -rf $(COVER_DIR) && mkdir -p $(COVER_DIR)/counters
	GOCOVERDIR=$(COVER_DIR)/counters $(COVER_BIN) sim sweep --scenario scenarios --seeds $(SEEDS) \
		--start-seed $(START) --parallel $(PARALLEL); status=$$?; \
	$(GO) tool covdata textfmt -i=$(COVER_DIR)/counters -o=$(COVER_DIR)/profile.txt && \
	echo && $(GO) run ./tools/corecover -profile $(COVER_DIR)/profile.txt && exit $$status

# For each planted bug, the first seed and shipped scenario that catch it.
planted-sweep:
	$(GO) run -tags aspenbugs ./tools/plantedsweep

# The same seed in separate processes and with other GOMAXPROCS must hash the same.
determinism: build
	@for f in scenarios/*.toml; do for s in 1 17 4242; do \
		$(BIN) sim check-determinism --scenario $$f --seed $$s || exit 1; done; done

# Simulation speed on one core, and the core's hot paths.
bench:
	GOMAXPROCS=1 $(GO) test ./sim/ -run '^$$' -bench . -benchtime 5x
	$(GO) test ./core/... ./sim/disk/ -run '^$$' -bench . -benchtime 1s

# Aspen against etcd on this machine, 3 nodes each on loopback, each through
# its official client; needs Debian's etcd 3.4 (apt-get install -y
# etcd-server). About 9 minutes; ETCDCMP_FLAGS='-large' adds the 1M-key case
# (a few minutes more), '-rounds 2 -duration 4s' is a quick look, '-json'
# prints JSON. tools/bench/etcdcmp is a module of its own, so the product's
# go.mod does not pull in etcd's client.
ETCDCMP_FLAGS ?=
bench-etcd:
	cd tools/bench/etcdcmp && $(GO) run . -repo $(CURDIR) $(ETCDCMP_FLAGS)

# Where one client's put goes: the mean of each step of the node loop
# (Ready, batch write, sync) and of the state writes into Badger on every
# node and the leader's time for the
# request, around a 1-client run of aspen bench (PUT_LATENCY_SECONDS).
PUT_LATENCY_SECONDS ?= 15
bench-latency:
	tools/bench/put-latency.sh $(PUT_LATENCY_SECONDS)

vet:
	$(GO) vet ./...

ci: vet test determinism
	$(MAKE) sweep SEEDS=40

clean:
	rm -rf bin artifacts
