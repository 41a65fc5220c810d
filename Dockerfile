# Multi-stage build: compile in the Rust image, run from a small Debian base as a
# non-root user with the state directory as a volume. No OpenSSL anywhere (rustls).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin switchboard \
 && strip target/release/switchboard

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/switchboard --shell /usr/sbin/nologin switchboard \
 && mkdir -p /var/lib/switchboard /etc/switchboard \
 && chown switchboard:switchboard /var/lib/switchboard
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
COPY config.example.yaml /etc/switchboard/config.example.yaml
USER switchboard
WORKDIR /var/lib/switchboard
# state_dir in the config should point here (e.g. state_dir: /var/lib/switchboard).
VOLUME ["/var/lib/switchboard"]
# /healthz and /metrics; the config must listen on 0.0.0.0:9477 with
# allow_non_loopback: true for them to be reachable from outside the container.
EXPOSE 9477
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["run", "-c", "/etc/switchboard/switchboard.yaml"]
