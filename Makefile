# Sluice: `make run` starts a local broker, `make test` runs every test.
GO ?= go
STATICCHECK_VERSION := v0.8.2
GOBIN := $(shell $(GO) env GOPATH)/bin

.PHONY: build build-lean run demo test test-race lint bench compat compat-load fuzz tools clean

build:
	$(GO) build -o bin/sluice ./cmd/sluice

# The broker and its tools (acls, users, quotas, certs, bench, chaos, exporter)
# without the operations suite: about a third of the size, no cloud SDKs.
build-lean:
	$(GO) build -tags lean -o bin/sluice-lean ./cmd/sluice

# The local stack: three brokers on 127.0.0.1:9092-9094 (PLAINTEXT on loopback;
# `./bin/sluice dev --secure` serves SASL_SSL, docs/security.md) and the
# exporter on 127.0.0.1:9308, data under ./data; Ctrl-C stops it cleanly.
run: build
	./bin/sluice dev --data-dir data

# The local stack with demo traffic and, after 30 s, a stopped broker that
# becomes an incident (FAULT=consumer stalls a consumer group instead).
# SCENARIO=scale runs the scaling scenario instead, on a new data-scale
# directory: brokers and a controller join, a broker is drained and leaves,
# one is killed (docs/operations.md, "The scaling demo").
FAULT ?= broker
SCENARIO ?=
demo: build
ifeq ($(SCENARIO),scale)
	rm -rf data-scale
	./bin/sluice demo --data-dir data-scale --scenario scale
else
	./bin/sluice demo --data-dir data --fault $(FAULT)
endif

# Every package once: the ones that run goroutines of their own under the race
# detector, the rest (process-level tests, whose brokers are separate
# processes, and pure code) without it. Process tests run bin/sluice. The
# browser tests run once, without the race detector (chromium is slow enough);
# the end-to-end drills (test/e2e, and the local stack's demo fault, scaling scenario and
# five-minute busy-machine run) are `make e2e`.
RACE_PKGS := ./broker/... ./alerting/... ./exporter/... ./stack/... ./tickets/... ./bench/... ./dashboards/... ./internal/... ./cmd/... ./gateway/...
BROWSER := TestBrowser|TestBrowserIncidentPage|TestBrowserTenantPages
STACK_DRILLS := TestBusyMachineRaisesNoIncident|TestDemoBrokerFault|TestDemoScaleScenario
test: build
	SLUICE_BIN=$(CURDIR)/bin/sluice $(GO) test -count=1 -race -timeout 20m -skip '^($(BROWSER)|$(STACK_DRILLS))$$' $(RACE_PKGS)
	SLUICE_BIN=$(CURDIR)/bin/sluice $(GO) test -count=1 -timeout 10m -run '^($(BROWSER))$$' ./tickets/
	SLUICE_BIN=$(CURDIR)/bin/sluice $(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v -E '/(broker|alerting|exporter|stack|tickets|bench|dashboards|internal|cmd|gateway)(/|$$)|/test/e2e$$')

# The race detector alone over every package with goroutines (a subset of make test).
test-race: build
	SLUICE_BIN=$(CURDIR)/bin/sluice $(GO) test -count=1 -race -timeout 20m -skip '^($(BROWSER)|$(STACK_DRILLS))$$' $(RACE_PKGS)

# The tools make lint uses, installed once.
tools:
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# gofmt, go vet (also for darwin and windows, so a platform break fails CI) and staticcheck.
lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	$(GO) vet -tags lean ./cmd/sluice
	$(GOBIN)/staticcheck ./...

# Throughput of a fresh broker process against franz-go's in-memory fake in the
# same run; see docs/benchmarks.md.
bench: build
	bench/compare.sh

# franz-go's own integration suite (pkg/kgo) against a running Sluice broker.
compat: build
	./scripts/compat.sh

# The load test: franz-go's suite against the 3-broker cluster while two CPU hogs keep both cores busy;
# no test may fail and no broker may be fenced. Not part of CI's time budget (about 10 minutes).
compat-load: build
	COMPAT_MODE=cluster COMPAT_HOGS=2 ./scripts/compat.sh

# A short run of every fuzz target, and the soak of mutated frames of every API key
# beside an acknowledged producer (5 s of it runs in `make test`).
SOAK ?= 2m
fuzz:
	$(GO) test ./broker/record/ -run '^$$' -fuzz FuzzParse -fuzztime 30s
	$(GO) test ./broker/storage/ -run '^$$' -fuzz FuzzRecover -fuzztime 30s
	$(GO) test ./broker/acl/ -run '^$$' -fuzz '^FuzzAuthorize$$' -fuzztime 30s
	$(GO) test ./broker/ -run '^$$' -fuzz '^FuzzACLFilter$$' -fuzztime 30s
	$(GO) test ./broker/ -run '^$$' -fuzz '^FuzzSASLExchanges$$' -fuzztime 30s
	$(GO) test ./broker/ -run '^$$' -fuzz '^FuzzPrincipalRules$$' -fuzztime 30s
	$(GO) test ./broker/saslprincipal/ -run '^$$' -fuzz FuzzSCRAMClientFirst -fuzztime 30s
	$(GO) test ./broker/ -run '^$$' -fuzz FuzzRequest -fuzztime 30s
	$(GO) test ./gateway/ -run '^$$' -fuzz FuzzRequest -fuzztime 30s
	$(GO) test ./broker/ -count=1 -v -run '^TestSoakMutatedFrames$$' -soak $(SOAK) -timeout 15m

clean:
	rm -rf bin data .compat

# The end-to-end fault drill (test/e2e): kill a broker under load, follow the alert through real
# Prometheus and Alertmanager, then through `sluice alerting`, to a ticket-service incident.
.PHONY: e2e
e2e: build
	SLUICE_BIN=$(CURDIR)/bin/sluice $(GO) test -count=1 -timeout 15m ./test/e2e/
	SLUICE_BIN=$(CURDIR)/bin/sluice $(GO) test -count=1 -timeout 20m -run '^($(STACK_DRILLS))$$' ./stack/
