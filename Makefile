# runbook — build, test, demo.
#   make build   binaries in bin/ (runbook, testenv)
#   make test    every test: unit, integration on the lab (root, Linux), CLI scripts
#   make demo    a 3-host lab with LDAP, the seed's Redis Cluster deployed on it, and its status
#   make bench   benchmarks (Go micro-benchmarks and the side-by-side runs)
#   make fuzz    each fuzz target for FUZZTIME (default 60s), keeping the corpus in testdata/fuzz

GO        ?= go
BIN       := bin
LAB       ?= .testenv
FUZZTIME  ?= 60s
DEB_PKGS  := openssh-server redis-server redis-tools slapd ldap-utils python3-redis iproute2 iputils-ping procps
export GOFLAGS ?= -buildvcs=false

.PHONY: all build test unit deps lint demo demo-down bench reliability fuzz docs clean

all: build

build:
	$(GO) build -o $(BIN)/runbook ./cmd/runbook
	$(GO) build -o $(BIN)/testenv ./cmd/testenv

# Debian packages the lab and the checks need (only when running as root and something is missing).
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (integration tests will skip; run make test as root)"; fi; \
	fi
	$(GO) mod download

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...

test: deps lint
	$(GO) test -count=1 -timeout 12m ./...

unit:
	$(GO) test -short -count=1 ./...

demo: deps build
	$(BIN)/testenv up --nodes 3 --ldap --dir $(LAB)
	$(BIN)/runbook apply -i $(LAB)/inventory.hcl -var-file $(LAB)/ldap.vars.hcl playbooks/site.hcl
	$(BIN)/runbook status -i $(LAB)/inventory.hcl playbooks/site.hcl

demo-down:
	-$(BIN)/testenv down --dir $(LAB)

# Go micro-benchmarks, then the side-by-side runs against the peers (the Ansible playbook and the
# manual redis-cli scripts) when PEERS names their folder: make bench PEERS=/path/to/peers
PEERS     ?=
BENCH_HOSTS ?= 3,10,30
BENCH_RUNS  ?= 5
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 5x -timeout 30m ./engine/... ./modules/...
	@if [ -n "$(PEERS)" ]; then \
	  $(GO) run ./cmd/benchmark --peers $(PEERS) --runbook $(BIN)/runbook --hosts $(BENCH_HOSTS) --runs $(BENCH_RUNS) --out docs/benchmarks.md; \
	else echo "side-by-side runs skipped: set PEERS to the folder holding ansible/ and manual/"; fi

# The fault scenarios on the lab (root, Linux); their rows become docs/reliability.md even when a
# scenario fails (the page says which), and the target then fails too.
RELIABILITY_ROWS := $(BIN)/reliability.jsonl
reliability: deps
	@mkdir -p $(BIN); rm -f $(RELIABILITY_ROWS)
	@start=$$(date +%s); \
	RUNBOOK_RELIABILITY_OUT=$(CURDIR)/$(RELIABILITY_ROWS) $(GO) test -count=1 -run '^TestFaults$$' -timeout 15m ./playbooks; status=$$?; \
	$(GO) run ./cmd/reliability-report -took $$(( $$(date +%s) - start ))s -o docs/reliability.md $(RELIABILITY_ROWS) && exit $$status

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME) ./engine/config
	$(GO) test -run '^$$' -fuzz FuzzParseClusterNodes -fuzztime $(FUZZTIME) ./modules/redis_cluster

docs:
	$(GO) test ./modules/all -run TestDocs -update

clean:
	rm -rf $(BIN)
