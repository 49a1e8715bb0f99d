# The README's test command is `make test`; CI (.ci/run) runs exactly that.
GO ?= go

.PHONY: build test deps lint unit fuzz conformance image-check clean bench

build:
	$(GO) build -o bin/mcp-oauth-proxy ./cmd/mcp-oauth-proxy

# test installs what the tests need, checks formatting, vet (also for macOS,
# Windows and 32-bit Linux, whose builds CI does not run) and staticcheck,
# runs every test with the race detector inside a private Secret Service
# session (so the keychain tests run against the real thing) and with
# headless Chromium for the status page, runs each fuzz target briefly,
# builds the sidecar image's static binary as the Dockerfile does, and runs
# the official MCP conformance suite's auth scenarios through the proxy.
test: deps lint unit fuzz image-check conformance

deps:
	scripts/install-test-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	GOARCH=386 $(GO) vet ./...
	$(GO) tool staticcheck ./...

# MCP_OAUTH_PROXY_BROWSER_TESTS=1: a missing Chromium fails the browser
# tests instead of skipping them. The proxy package runs a second time
# without the race detector: race builds leave out its raw system-call I/O
# (proxy/rawio_linux.go).
unit:
	MCP_OAUTH_PROXY_BROWSER_TESTS=1 scripts/with-secret-service.sh $(GO) test -race -shuffle=on ./...
	$(GO) test -shuffle=on ./proxy

# Each fuzz target for a few seconds (FUZZTIME); the corpora live in
# testdata/fuzz.
fuzz:
	GO=$(GO) scripts/fuzz.sh

# No container engine runs in CI: build the binary with the Dockerfile's
# own command line and check it is static and runs.
image-check:
	GO=$(GO) scripts/docker-build-check.sh

conformance:
	GO=$(GO) scripts/conformance.sh

# bench measures the proxy against no proxy and nginx (see BENCHMARKS.md).
# Not part of test: timings on a shared machine are too noisy for pass/fail.
# Harness flags go in BENCHFLAGS, e.g. make bench BENCHFLAGS="-rounds 3".
bench:
	bench/run.sh $(BENCHFLAGS)

clean:
	rm -rf bin
