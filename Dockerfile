# syntax=docker/dockerfile:1
# Build stage: SQLite, libpq and OpenSSL are compiled from source by the
# build (bundled/vendored crates), so the toolchain image needs nothing more.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY console ./console
COPY benches ./benches
COPY migrations ./migrations
COPY config ./config
RUN cargo build --release --locked --bin keymint

# Runtime stage: the binary (linked statically against libpq and OpenSSL)
# and a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/keymint --create-home keymint
COPY --from=build /src/target/release/keymint /usr/local/bin/keymint
USER keymint
WORKDIR /var/lib/keymint
ENV KEYMINT__SERVER__BIND=0.0.0.0:8080 \
    KEYMINT__DATA_DIR=/var/lib/keymint \
    KEYMINT__LOG__FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/keymint"]
CMD ["serve"]
