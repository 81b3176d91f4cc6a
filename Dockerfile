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

# The default SQLite database lives in the working directory; mount a volume here to keep it.
WORKDIR /var/lib/restop

ENV RESTOP_LISTEN=0.0.0.0:8080 \
    RESTOP_LOG_FORMAT=json \
    DATABASE_URL=sqlite:///var/lib/restop/restop.db

EXPOSE 8080

USER 10001

# No HEALTHCHECK: the image carries no HTTP client. Orchestrators should probe over HTTP:
# GET /healthz (liveness, 200 while the process runs) and GET /readyz (readiness, 200 when
# the database answers). docker-compose.yml shows a probe that needs only bash.
# restop is PID 1 and handles SIGTERM itself (drains requests, finishes steps in flight).
ENTRYPOINT ["/usr/local/bin/restop"]
CMD ["serve"]
