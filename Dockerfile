# syntax=docker/dockerfile:1
#
# mcp-oauth-proxy as a sidecar: a static binary on distroless, run as a
# non-root user, config mounted read-only. See docs/sidecar.md.
#
#   docker build -t mcp-oauth-proxy .
#   docker run --rm -it -v "$PWD/fastagent.config.yaml:/config/fastagent.config.yaml:ro" \
#     -p 127.0.0.1:8101:8101 -p 127.0.0.1:3030:3030 -p 127.0.0.1:3029:3029 mcp-oauth-proxy
#
# with proxy.listen in the config on 0.0.0.0:8101: 3030 takes the login's
# redirect, 3029 is the status page; -it lets you paste a callback URL.
#
# scripts/docker-build-check.sh runs the `go build` line below, as written,
# where no container engine is available (CI): keep it on one line.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/mcp-oauth-proxy ./cmd/mcp-oauth-proxy

# distroless/static has CA certificates (for https upstreams and
# authorization servers), /etc/passwd with the nonroot user, and no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mcp-oauth-proxy /usr/local/bin/mcp-oauth-proxy
# The config and fastagent.secrets.yaml beside it, mounted read-only.
VOLUME ["/config"]
# Listener ports: 8101 is the convention of docs/sidecar.md (set yours in
# proxy.listen); 3030 is the default OAuth callback (auth.redirect_port);
# 3029 is the status page.
EXPOSE 8101 3030 3029
# distroless's nonroot user, by number: Kubernetes' runAsNonRoot can only
# check a numeric user.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/mcp-oauth-proxy"]
# Other containers reach the listeners, so they bind beyond loopback; the
# Host check stays on (add --allow-host NAME for a service name).
CMD ["serve", "--config", "/config/fastagent.config.yaml", "--allow-remote", "--admin", "0.0.0.0:3029"]
