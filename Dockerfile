# maxq's image: `docker build -t maxq .`, then `docker run --rm maxq run --help`.
# Every flag can also be given as a MAXQ_… environment variable (see `maxq run --help`).
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src src
COPY bench bench
COPY benches benches
COPY datasets datasets
RUN cargo build --release --locked --bin maxq \
 && cp target/release/maxq /usr/local/bin/maxq

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/maxq --create-home maxq
COPY --from=build /usr/local/bin/maxq /usr/local/bin/maxq
COPY datasets /datasets
USER maxq
WORKDIR /var/lib/maxq
# timely's cluster port (-h / --peers).
EXPOSE 2101
ENTRYPOINT ["maxq"]
CMD ["--help"]
