# weir's image, with Docker (or any builder of Dockerfiles):
#
#   docker build -t weir:0.1.0 .
#
# Without a daemon or a registry, scripts/image/build.sh builds the same image (the release
# binary, the glibc libraries it loads, CA certificates, user 65532) with umoci; that is the
# one CI builds and tests (docs/kubernetes.md, "The image").
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p weir \
 && objcopy --strip-debug --strip-unneeded target/release/weir /weir

# Distroless "cc": glibc, libgcc and CA certificates, no shell; user 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /weir /usr/local/bin/weir
USER 65532:65532
EXPOSE 8888
ENTRYPOINT ["/usr/local/bin/weir"]
CMD ["server", "--listen", "0.0.0.0:8888"]
