# The README's test command is `make test`; CI (.ci/run) runs exactly that.
GO ?= go

.PHONY: build test deps lint unit conformance clean

build:
	$(GO) build -o bin/mcp-oauth-proxy ./cmd/mcp-oauth-proxy

# test installs what the tests need, checks formatting, vet and staticcheck,
# runs every test with the race detector inside a private Secret Service
# session (so the keychain tests run against the real thing), then the
# official MCP conformance suite's auth scenarios through the proxy.
test: deps lint unit conformance

deps:
	scripts/install-test-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

unit:
	scripts/with-secret-service.sh $(GO) test -race -shuffle=on ./...

conformance:
	GO=$(GO) scripts/conformance.sh

clean:
	rm -rf bin
