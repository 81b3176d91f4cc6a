# syntax=docker/dockerfile:1

# ---- build -----------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS builder

# openssl-sys (signature checks) links against the system OpenSSL. The image already has
# gcc for ring and the bundled SQLite.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first: this layer is rebuilt only when Cargo.toml / Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin restop \
    && rm -rf src

# The real sources. migrations/ is embedded at compile time by `sqlx::migrate!`, and ui/
# (the operator console) by `include_str!`.
COPY src ./src
COPY migrations ./migrations
COPY ui ./ui
# COPY keeps the files' own mtimes, which can be older than the placeholder build above;
# touching the crate roots makes cargo rebuild restop itself.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin restop \
    && install -m 0755 target/release/restop /usr/local/bin/restop

# ---- runtime ---------------------------------------------------------------------------
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="restop" \
      org.opencontainers.image.description="Keeps stopped Amazon RDS databases stopped: authenticates SNS deliveries of RDS events and stops auto-started databases" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"

# libssl3 for the dynamically linked OpenSSL; ca-certificates for HTTPS to AWS and SNS.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 restop \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/restop \
        --shell /usr/sbin/nologin restop \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/restop

COPY --from=builder /usr/local/bin/restop /usr/local/bin/restop

# restop writes nothing but its SQLite database (none at all with PostgreSQL), so the image
# runs with a read-only root filesystem (docker run --read-only, compose's read_only: true,
# ECS's readonlyRootFilesystem): /var/lib/restop is the one writable place, a volume.
WORKDIR /var/lib/restop
VOLUME ["/var/lib/restop"]

ENV RESTOP_LISTEN=0.0.0.0:8080 \
    RESTOP_LOG_FORMAT=json \
    DATABASE_URL=sqlite:///var/lib/restop/restop.db

EXPOSE 8080

USER 10001

# No HEALTHCHECK, by design: whatever routes traffic to restop checks it over HTTP, where it
# matters. The load balancer of deploy/cloudformation/service.yaml sends traffic only to tasks
# whose GET /readyz answers 200 (the database answers) and ECS replaces tasks that fail it;
# GET /healthz is 200 while the process runs (liveness). A HEALTHCHECK would need an HTTP
# client in the image and would only duplicate that. docker-compose.yml, which has no load
# balancer, probes /readyz with bash alone.
# restop is PID 1 and handles SIGTERM itself: it stops accepting, drains requests and finishes
# the steps in flight, within 40 s (give it that: docker stop -t 40, ECS stopTimeout 40).
ENTRYPOINT ["/usr/local/bin/restop"]
CMD ["serve"]
