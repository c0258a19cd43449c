# headroom: build with cmake on Debian bookworm, run on a slim bookworm.
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libhiredis-dev libyaml-cpp-dev libspdlog-dev doctest-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY resp resp
COPY balancer balancer
COPY proxy proxy
COPY conf conf
COPY tests tests
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"$(nproc)" --target headroom

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libhiredis0.14 libyaml-cpp0.7 libspdlog1.10 redis-tools \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/headroom /usr/local/bin/headroom
COPY conf /etc/headroom
EXPOSE 6380
ENTRYPOINT ["/usr/local/bin/headroom"]
CMD ["-c", "/etc/headroom/headroom-compose.yml"]
