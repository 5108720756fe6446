# Continuum — every entry point a person or CI uses. `make` lists them.
GO        ?= go
BIN       := bin/continuum
PKGS      := ./...
SEED      ?= 1
DURATION  ?= 60s
FUZZTIME  ?= 30s
F15RUNS   ?= 50

.DEFAULT_GOAL := help
.PHONY: help build run test test-failpoints test-race test-faults test-disaster bench-archive test-large test-migrate test-login-flood bench bench-compare bench-compare-imap bench-search fuzz proto lint clean image test-docker

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/continuum
	$(GO) build -o $(BIN) ./cmd/continuum

run: build ## a 3-node cluster on this machine (continuum dev), ready to receive and serve mail
	$(BIN) dev --dir .dev

test: build test-failpoints ## every test CI runs (unit, cluster, real clients, scaled-down faults)
	$(GO) test -p 1 -count=1 -timeout 25m $(PKGS)

test-failpoints: ## the failpoint unit tests (package failpoint, tag failpoints): seconds
	$(GO) test -count=1 -tags failpoints ./storage/failpoint/ ./raftfsm/ ./node/propose/

test-race: ## the unit and cluster tests under the race detector
	$(GO) test -race -count=1 -timeout 40m $(PKGS)

test-faults: build ## the fault scenarios, as long as asked: make test-faults SEED=7 DURATION=10m F15RUNS=50
	CONTINUUM_FAULT_SEED=$(SEED) CONTINUUM_FAULT_DURATION=$(DURATION) CONTINUUM_F15_RUNS=$(F15RUNS) $(GO) test -count=1 -timeout 0 -run 'TestFault|TestChecker' -v ./node/clustertest/

test-disaster: build ## issue 20 full size: archive replica lag and delivery latency over 60 s phases, both recoveries
	CONTINUUM_DISASTER_DURATION=$${CONTINUUM_DISASTER_DURATION:-60s} $(GO) test -count=1 -timeout 30m -run 'TestDisasterRecover' -v ./node/clustertest/

bench-archive: build ## issue 20: delivery latency without/with an archive replica (voters on CPU 0, archive on CPU 1), alternating, and its lag
	CONTINUUM_ARCHIVE_BENCH=$${CONTINUUM_ARCHIVE_BENCH:-30s} CONTINUUM_ARCHIVE_ROUNDS=$${CONTINUUM_ARCHIVE_ROUNDS:-3} $(GO) test -count=1 -timeout 60m -run 'TestArchiveReplicaCost' -v ./node/clustertest/

test-large: ## F16 full size: 20 × 45 MB through a follower in each Raft profile, with 8 small senders (in-process, then real processes)
	CONTINUUM_LARGE_N=$${CONTINUUM_LARGE_N:-20} CONTINUUM_LARGE_PROFILES=$${CONTINUUM_LARGE_PROFILES:-local,lan,wan} \
	  $(GO) test -count=1 -timeout 60m -run 'TestLargeMessages' -v ./node/smtpd/
	for p in $$(echo $${CONTINUUM_LARGE_PROFILES:-local,lan,wan} | tr , ' '); do \
	  CONTINUUM_LARGE_FULL=1 CONTINUUM_LARGE_PROFILE=$$p $(GO) test -count=1 -timeout 60m -run 'TestLargeMessagesProcesses' -v ./node/clustertest/ || exit 1; \
	done

test-login-flood: ## 500 parallel IMAP LOGINs on one node: every one answered, heap under the stated bound
	CONTINUUM_LOGIN_FLOOD=500 $(GO) test -count=1 -timeout 20m -run 'TestLoginFloodBoundsMemory' -v ./node/

test-migrate: ## import/export full size: 10,000-message mbox and Maildir round trips, 2,000 messages from Dovecot, import speed
	CONTINUUM_MIGRATE_FULL=1 CONTINUUM_REQUIRE_DOVECOT=1 $(GO) test -count=1 -timeout 60m -run 'TestMbox|TestMaildir|TestDovecot|TestImport' -v ./node/migrate/

bench: ## benchmarks: replicated deliveries, FSM apply, log store, parsing
	$(GO) test -run '^$$' -bench . -benchtime 3s -timeout 30m ./storage/... ./raftfsm/... ./node/... 

BENCH_DURATION ?= 15s
bench-compare: ## Continuum (3 nodes) beside Dovecot on the same workloads; installs dovecot-imapd/-lmtpd if missing; writes BENCHMARKS.md (about 10 min)
	@dpkg -s dovecot-imapd dovecot-lmtpd >/dev/null 2>&1 || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get install -y -qq --no-install-recommends dovecot-imapd dovecot-lmtpd >/dev/null; }
	$(GO) build -o $(BIN) ./cmd/continuum
	$(BIN) bench compare --duration $(BENCH_DURATION) --out BENCHMARKS.md --notes docs/benchmarks-notes.md

bench-compare-imap: ## the IMAP rows only, Dovecot beside Continuum in one run: FETCH, logins, IDLE, 20-client mixed load, imaplib APPEND/STORE latency at the leader and a follower; prints the table (about 6 min)
	@dpkg -s dovecot-imapd dovecot-lmtpd >/dev/null 2>&1 || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get install -y -qq --no-install-recommends dovecot-imapd dovecot-lmtpd >/dev/null; }
	$(GO) build -o $(BIN) ./cmd/continuum
	$(BIN) bench compare --workloads imap --duration $(BENCH_DURATION)

bench-search: ## full-text search: SEARCH TEXT on 10,000 and 100,000 messages, indexing cost, index size (about 20 min)
	$(GO) test -run '^$$' -bench BenchmarkSearchText -benchtime 5x -timeout 60m -v ./node/search/

fuzz: ## run every fuzz target for FUZZTIME each
	@$(GO) list -f '{{.Dir}} {{.ImportPath}}' $(PKGS) | while read dir pkg; do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

proto: ## regenerate the protobuf and gRPC code (needs protoc, protoc-gen-go, protoc-gen-go-grpc)
	protoc -I . --go_out=. --go_opt=module=github.com/continuum-mail/continuum \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/continuum-mail/continuum \
	  proto/storagepb/storage.proto proto/commandpb/command.proto proto/peerpb/peer.proto proto/adminpb/admin.proto

lint: ## gofmt, go vet, and the layering test (node/layering_test.go)
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || (gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'); exit 1)
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -run 'TestLayering' ./node/

image: ## the container image continuum:dev, FROM scratch around a static binary
	rm -rf bin/image && mkdir -p bin/image/rootfs/data bin/image/rootfs/tmp bin/image/rootfs/tls
	chmod 1777 bin/image/rootfs/tmp
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/image/continuum ./cmd/continuum
	cp deploy/docker/Dockerfile bin/image/
	docker build -q -t continuum:dev bin/image

test-docker: image ## the 3-site compose cluster on Docker: WAN cut, catch-up, rolling restart
	CONTINUUM_DOCKER=1 $(GO) test -count=1 -timeout 20m -v ./deploy/...

clean: ## remove build output and the dev cluster's data
	rm -rf bin .dev
