# cms-xmpp-exporter container image: a fully static binary (glibc, crt-static) on `scratch`,
# with the Debian CA bundle, running as 65532:65532. linux/amd64 only.
#
#   docker build --platform linux/amd64 -t cms-xmpp-exporter:0.1.0 .
#
# deploy/check/static-binary.sh runs this file's build stage on the local toolchain without
# Docker, assembles the final image's files into an empty root directory and runs the exporter
# there; keep both in step (it reads the instructions below, so a change here is tested there).

# The build stage's Debian release is the one whose glibc the binary embeds. Same Rust as CI.
ARG RUST_IMAGE=rust:1.95.0-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# --target keeps crt-static away from build scripts and proc macros. The getrandom cfg calls
# getrandom(2) directly: a static glibc hides the symbol from the default backend's dlsym,
# which would otherwise fall back to /dev/urandom.
ENV CARGO_BUILD_TARGET=x86_64-unknown-linux-gnu \
    RUSTFLAGS="-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
    CARGO_TERM_COLOR=never

# Dependencies first: this layer is rebuilt only when the manifest changes. benches/ comes
# along because Cargo.toml names a bench whose file must exist (it is not built). The
# placeholder crate's own artifacts are removed (cargo clean needs --target to find them).
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && cargo clean --release --locked --target "$CARGO_BUILD_TARGET" -p cms-xmpp-exporter \
    && rm -rf src

# COPY keeps the files' old mtimes: touch the crate roots so cargo never takes the placeholder
# build for an up-to-date one.
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -D -m 0755 target/x86_64-unknown-linux-gnu/release/cms-xmpp-exporter \
        rootfs/usr/local/bin/cms-xmpp-exporter \
    && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt \
        rootfs/etc/ssl/certs/ca-certificates.crt \
    && install -d -m 0755 rootfs/etc/cms-xmpp-exporter \
    && printf 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' > rootfs/etc/passwd \
    && printf 'nonroot:x:65532:\n' > rootfs/etc/group

FROM scratch

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE_URL=https://github.com/OWNER/cms-xmpp-exporter
LABEL org.opencontainers.image.title="cms-xmpp-exporter" \
      org.opencontainers.image.description="Prometheus exporter that re-enacts a Cisco Meeting Server Callbridge registering with its XMPP server (XEP-0114)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=build /src/rootfs/ /

# The configuration is mounted here (a ConfigMap in Kubernetes); --config or
# CMS_XMPP_EXPORTER_CONFIG name another file.
ENV CMS_XMPP_EXPORTER_CONFIG=/etc/cms-xmpp-exporter/config.yaml
USER 65532:65532
EXPOSE 9523
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/cms-xmpp-exporter", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/cms-xmpp-exporter"]
