# Kapkan. `make run` starts the daemon on its embedded defaults; `make test`
# runs every test (it installs what the tests need first). V=1 for detail.

GO       ?= go
BIN      := bin/kapkan
PKGS     := ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
TIMEOUT  ?= 10m
COUNT    ?= 6
BENCH    ?= .
FUZZTIME ?= 30s
SOAK_DURATION ?= 30m
CONFIG   ?=

Q = $(if $(filter 1,$(V)),,@)
log = @printf '\033[1m▶ %s\033[0m\n' "$(1)"

export CGO_ENABLED ?= 0
# go.mod names the toolchain to build with (toolchain line: a Go release
# with the standard library's security fixes); auto fetches it through the
# module proxy when the installed Go is older.
export GOTOOLCHAIN ?= auto

.PHONY: all build run wasm test test-allocs bench-e2e soak deps test-unit test-race test-integration test-deb lint fmt bench fuzz vuln clean deb release

all: build

build: ## the static binary in bin/kapkan
	$(call log,build $(BIN))
	$Q $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kapkan

# Packages and release binaries go to DIST (dist/, not committed). They are
# always static (CGO_ENABLED=0, whatever the environment says).
DIST        ?= dist
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
RELEASE_ARCHS := amd64 arm64
# The package's version: the tag without its v (v1.2.0-3-gabc1234 becomes
# 1.2.0+3.gabc1234), or before any tag 0.0.0~git<commit date>.<commit>.
DEB_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo "$$v" | sed 's/^v//; s/-\([0-9]*\)-g/+\1.g/' || echo "0.0.0~git$$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null).$$(git rev-parse --short HEAD 2>/dev/null)")
NFPM        := $(GO) tool -modfile=packaging/tools/go.mod nfpm

$(DIST)/linux-%/kapkan: FORCE
	$Q mkdir -p $(@D)
	$Q CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/kapkan

deb: $(DIST)/linux-$(DEB_ARCH)/kapkan ## the Debian package (nfpm) in dist/: binary, systemd unit, /etc/kapkan/kapkan.yaml (DEB_ARCH=arm64 for another)
	$(call log,deb kapkan $(DEB_VERSION) $(DEB_ARCH) → $(DIST))
	$Q mkdir -p bin/deb && cp $(DIST)/linux-$(DEB_ARCH)/kapkan bin/deb/kapkan # where nfpm.yaml takes it
	$Q DEB_VERSION='$(DEB_VERSION)' DEB_ARCH='$(DEB_ARCH)' $(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(DIST)/kapkan_$(DEB_VERSION)_$(DEB_ARCH).deb

release: $(foreach a,$(RELEASE_ARCHS),$(DIST)/linux-$(a)/kapkan) ## static binaries for linux amd64 and arm64 with their SHA-256 sums, in dist/
	$(call log,release $(VERSION) → $(DIST))
	$Q cd $(DIST) && for a in $(RELEASE_ARCHS); do cp linux-$$a/kapkan kapkan-$(VERSION)-linux-$$a; done
	$Q cd $(DIST) && sha256sum $(foreach a,$(RELEASE_ARCHS),kapkan-$(VERSION)-linux-$(a)) > SHA256SUMS && cat SHA256SUMS

FORCE:

run: build ## the daemon on its embedded defaults with demo traffic (CONFIG=file to use one)
	$(call log,run $(BIN) with demo traffic: dashboard on http://127.0.0.1:8080/ (the start line gives its address); the first attack about 15 s after start, then every kind in turn)
	$Q ./$(BIN) run --demo $(if $(CONFIG),--config $(CONFIG))

WASM_OUT ?= bin/wasm
WASM_EXAMPLES := $(notdir $(wildcard wasm-sdk/examples/*))

wasm: ## the example WASM modules and the conformance guest, in bin/wasm (stock Go, GOOS=wasip1)
	$(call log,wasm $(WASM_EXAMPLES) conformance → $(WASM_OUT))
	$Q mkdir -p $(WASM_OUT)
	$Q for m in $(WASM_EXAMPLES); do \
		GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -buildmode=c-shared -o $(WASM_OUT)/$$m.wasm ./wasm-sdk/examples/$$m || exit 1; \
	done
	$Q GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -buildmode=c-shared -o $(WASM_OUT)/conformance.wasm ./wasm-sdk/conformance
	$Q cd $(WASM_OUT) && sha256sum *.wasm

deps: ## install what the tests need (Debian packages: tshark, gobgpd, clickhouse-server, bird2, chromium, systemd for systemd-analyze; npm: playwright-core)
	$(call log,deps)
	$Q ./.ci/deps.sh tshark gobgpd clickhouse-server bird2 chromium systemd
	$Q test -f web/node_modules/playwright-core/package.json || npm ci --prefix web --no-audit --no-fund # the dashboard's browser test
	$Q systemctl disable --now clickhouse-server >/dev/null 2>&1 || true # the package may start a system server; the store tests run their own on loopback
	$Q systemctl disable --now bird >/dev/null 2>&1 || true # bird2 starts a system BIRD; the docs test only runs bird -p on the recipes, the BGP tests run their own on loopback

test: deps lint vuln test-allocs test-race test-deb ## every test: lint, unit and integration, under the race detector

test-allocs: ## allocation budgets, which the race detector would blur
	$(call log,test allocation budgets)
	$Q $(GO) test -count=1 -run 'Alloc' $(PKGS)

test-unit: ## unit tests without the race detector (fast)
	$(call log,test-unit)
	$Q $(GO) test -count=1 -timeout $(TIMEOUT) $(PKGS)

test-race:
	$(call log,test -race)
	$Q CGO_ENABLED=1 $(GO) test -race -count=1 -timeout $(TIMEOUT) $(PKGS)

test-integration: test-race

test-deb: ## build the Debian package, install it with dpkg, check it, purge it (root)
	$(call log,test-deb)
	$Q $(GO) test -tags deb -count=1 -timeout 5m -run 'Deb' ./packaging/

lint: ## gofmt, go vet, staticcheck, go.mod and go.sum tidy
	$(call log,lint)
	$Q $(GO) mod tidy -diff >/dev/null || { echo "go.mod or go.sum is not tidy: run go mod tidy (go mod tidy -diff shows the change)"; exit 1; }
	$Q test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$Q $(GO) vet $(PKGS)
	$Q $(GO) tool staticcheck $(PKGS)
	$Q $(GO) vet -tags deb ./packaging/
	$Q $(GO) tool staticcheck -tags deb ./packaging/

fmt:
	$Q gofmt -w $$(git ls-files '*.go')

bench: ## micro benchmarks, COUNT runs each, summarised by benchstat (bench.txt)
	$(call log,bench)
	$Q $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) $(PKGS) | tee bench.txt
	$Q $(GO) tool benchstat bench.txt

bench-e2e: build ## end-to-end load harness against the built daemon, and FastNetMon (E2E_FLAGS to pick steps); charts in docs/performance
	$(call log,bench-e2e)
	$Q ./.ci/deps.sh fastnetmon
	$Q systemctl disable --now fastnetmon >/dev/null 2>&1 || true # the package starts a system service; the harness runs its own
	$Q $(GO) test -tags e2e -count=1 ./bench/fnm
	$Q $(GO) run ./bench/e2e -fastnetmon -charts docs/performance $(E2E_FLAGS)

soak: build ## bounded soak of the daemon (SOAK_DURATION, default 30m; not part of test): report in docs/soak.md, soak.csv, soak.svg
	$(call log,soak $(SOAK_DURATION))
	$Q $(GO) run ./bench/soak -bin $(BIN) -duration $(SOAK_DURATION) $(SOAK_FLAGS)

fuzz: ## every fuzz target of every package, FUZZTIME each (found by go test -list: a new target needs no entry here)
	$(call log,fuzz for $(FUZZTIME) each)
	$Q for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for t in $$($(GO) test -list '^Fuzz' $$dir | grep '^Fuzz'); do \
			echo "fuzz $$dir $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$dir || exit 1; \
		done; \
	done

vuln: ## govulncheck on every package, the database built from the module proxy when vuln.go.dev is out of reach (.ci/vulncheck.sh)
	$(call log,vuln)
	$Q ./.ci/vulncheck.sh

clean:
	rm -rf bin bench.txt $(DIST)
