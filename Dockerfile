# Multi-stage build: compile in the Rust image, run from a small Debian base as a
# non-root user with the state directory as a volume. No OpenSSL anywhere (rustls).
FROM rust:1.95-slim-bookworm AS build
# The slim image brings gcc and libc6-dev, which ring, aws-lc-sys and the bundled
# SQLite compile their C with, but not make, which tikv-jemalloc-sys's build script
# runs (jemalloc is in the default features). scripts/check-docker-build checks this
# list where no container engine runs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin switchboard \
 && strip target/release/switchboard

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/switchboard --shell /usr/sbin/nologin switchboard \
 && mkdir -p /var/lib/switchboard /etc/switchboard \
 && chown switchboard:switchboard /var/lib/switchboard \
 && chmod 700 /var/lib/switchboard
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
COPY config.example.yaml /etc/switchboard/config.example.yaml
USER switchboard
WORKDIR /var/lib/switchboard
# state_dir in the config should point here (e.g. state_dir: /var/lib/switchboard).
VOLUME ["/var/lib/switchboard"]
# /healthz and /metrics; the config must listen on 0.0.0.0:9477 with
# allow_non_loopback: true for them to be reachable from outside the container.
EXPOSE 9477
# The image has no curl (it would bring libcurl and OpenSSL): the binary asks its own
# /healthz. Unhealthy while any network is down (/healthz answers 503 then); use
# `healthcheck --degraded-ok` instead for a liveness check only. The URL must match
# http.listen in the config.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/switchboard", "healthcheck", "--url", "http://127.0.0.1:9477/healthz"]
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["run", "-c", "/etc/switchboard/switchboard.yaml"]
