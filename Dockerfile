# headroom: built with cmake on Debian bookworm, run on bookworm-slim with only the
# shared libraries it links (the same Debian packages as a local build).
#
#   docker build -t headroom .
#   docker run --rm headroom --help
#   docker-compose up        (main + 4 data nodes + headroom; see docker-compose.yml)

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libhiredis-dev libyaml-cpp-dev libspdlog-dev \
      libssl-dev libhttp-parser-dev prometheus-cpp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads: CMakeLists.txt also names the unit tests and the
# command-table dump tool, so their sources must exist even though only `headroom`
# is built (and tests/integration/node/node_modules must not be sent along).
COPY CMakeLists.txt ./
COPY resp resp
COPY net net
COPY balancer balancer
COPY proxy proxy
COPY conf conf
COPY tests/unit tests/unit
COPY tests/tools tests/tools
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build -j"$(nproc)" --target headroom \
 && strip build/headroom

FROM debian:bookworm-slim
# Runtime libraries of the -dev packages above (libfmt9 comes with libspdlog1.10);
# libssl3 and ca-certificates for TLS (backend_tls without ca_file trusts the system's
# CAs); redis-tools for the health check and for debugging from inside the container.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libhiredis0.14 libyaml-cpp0.7 libspdlog1.10 libssl3 libhttp-parser2.9 libprometheus-cpp-core1.0 \
      ca-certificates redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin headroom
COPY --from=build /src/build/headroom /usr/local/bin/headroom
COPY conf/headroom.yml conf/headroom-compose.yml conf/headroom-sidecar.yml /etc/headroom/
USER headroom
EXPOSE 6380 9380
# Alive means answering on 6380: PONG, or NOAUTH when the config sets requirepass.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD redis-cli -p 6380 ping 2>&1 | grep -qE 'PONG|NOAUTH'
ENTRYPOINT ["/usr/local/bin/headroom"]
CMD ["-c", "/etc/headroom/headroom-compose.yml"]
