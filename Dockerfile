# syntax=docker/dockerfile:1
#
# The single sluice image: one static binary (every subcommand: broker,
# exporter, alerting, tickets, ...) on Alpine, run as a non-root user.
#
#   docker build -t sluice .
#   docker run --rm sluice broker --help
#
# Alpine rather than distroless: the compose file's healthchecks use busybox
# wget against /healthz and /readyz (sluice has no health subcommand), and the
# one-shot tickets-init service needs a shell to mint the Alertmanager webhook
# token once. The binary itself needs nothing from the image but CA
# certificates (Slack over HTTPS, SMTP with TLS) and time zone data.

ARG GO_VERSION=1.26.8
ARG ALPINE_VERSION=3.22

FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
# The toolchain of the image, never a download: go.mod's go line must match it.
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/sluice ./cmd/sluice

FROM alpine:${ALPINE_VERSION}
RUN apk add --no-cache ca-certificates tzdata \
 && addgroup -S -g 10001 sluice \
 && adduser -S -D -H -u 10001 -G sluice -h /var/lib/sluice sluice \
 && install -d -o sluice -g sluice -m 0750 /var/lib/sluice
COPY --from=build /out/sluice /usr/local/bin/sluice
USER 10001:10001
WORKDIR /var/lib/sluice
# Broker partition logs and metadata, the tickets SQLite database when no
# PostgreSQL is given, alerting's TSDB: each container mounts its own volume here.
VOLUME ["/var/lib/sluice"]
# Kafka 9092, metadata quorum 9192, broker metrics/admin 9642, exporter 9308,
# tickets API and UI 8090.
EXPOSE 9092 9192 9642 9308 8090
ENTRYPOINT ["sluice"]
