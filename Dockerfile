# syntax=docker/dockerfile:1

# The cocoon image: one binary that runs as proxy, worker or client (cocoon proxy|worker|client).
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t cocoon .
#
# Base images are pinned and the build is -trimpath, so the same source gives the same binary: a
# TD's image is measured, and an operator must be able to rebuild it and get the same hash. For
# release builds, also pin both bases by digest (FROM image:tag@sha256:…).
#
# linux/amd64 only: tongo ships its TVM emulator (libemulator.so) for x86-64 only. Build with
# --platform linux/amd64 on other hosts (docker-compose.yml sets it).

# Must match the go line of go.mod: GOTOOLCHAIN=local below makes a mismatch fail the build instead
# of silently downloading another toolchain.
ARG GO_VERSION=1.26.8
# Debian 12 (bookworm), the same release the golang image is built on, so the glibc the binary and
# libemulator.so were linked against (2.36; libemulator.so needs 2.35) is the one they run with.
ARG DEBIAN_VERSION=12.12

FROM golang:${GO_VERSION}-bookworm AS build
# cgo: the local chain (`cocoon chain serve` in docker-compose.yml) runs the settlement contracts
# in tongo's TVM emulator, libemulator.so, which only a cgo binary can load. A proxy, worker or
# client settling on TON needs neither; CGO_ENABLED=0 gives such a binary without the local chain.
ENV CGO_ENABLED=1 GOTOOLCHAIN=local
WORKDIR /src
# Modules first, so editing source does not invalidate the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# -buildvcs=false: the version comes from VERSION; VCS stamping would make the binary depend on
# the state of any .git directory in the build context rather than on the source alone.
# The emulator library is taken from the tongo version go.mod selects (go list -m), so upgrading
# tongo upgrades the library with it. It is copied inside the same RUN because the module cache is
# a cache mount and not part of any layer.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out && \
    go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/cocoon . && \
    cp "$(go list -m -f '{{.Dir}}' github.com/tonkeeper/tongo)/lib/linux/libemulator.so" /out/

FROM debian:${DEBIAN_VERSION}-slim
ARG VERSION=dev
LABEL org.opencontainers.image.title="cocoon" \
      org.opencontainers.image.description="confidential compute open network for AI inference" \
      org.opencontainers.image.source="https://github.com/cocoon-network/cocoon" \
      org.opencontainers.image.version="${VERSION}"
# ca-certificates: Intel PCS collateral, TON lite-servers and https engine URLs are fetched over TLS.
# wget: the compose healthchecks call it (exec form, no shell); slim images have no curl.
RUN apt-get update && \
    apt-get install -y --no-install-recommends ca-certificates wget && \
    rm -rf /var/lib/apt/lists/*
# The binary does not link the library: it loads it when it opens the local chain, from next to
# itself or from the loader's search path, which is where it goes here.
COPY --from=build /out/libemulator.so /usr/local/lib/libemulator.so
RUN ldconfig
# A fixed numeric uid, so orchestrators can check runAsNonRoot and volumes can be chowned to it.
# /data, /sim and /keys exist and belong to that user so named volumes mounted there inherit the
# ownership on first use (/sim is the simulated-TDX development root and /keys the development keys
# of `cocoon demo setup`, both shared in docker-compose.yml).
RUN groupadd --system --gid 10001 cocoon && \
    useradd --system --uid 10001 --gid cocoon --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin cocoon && \
    mkdir -p /data /sim /keys && chown cocoon:cocoon /data /sim /keys && chmod 0700 /data /sim /keys
COPY --from=build /out/cocoon /usr/local/bin/cocoon
ENV COCOON_DATA=/data
VOLUME /data
WORKDIR /data
USER 10001:10001
# 4433/udp: proxy QUIC; 8080: client OpenAI API; 8081: `cocoon chain serve`; 9090/9091: proxy/worker
# stats and /healthz.
EXPOSE 4433/udp 8080 8081 9090 9091
ENTRYPOINT ["cocoon"]
CMD ["--help"]
