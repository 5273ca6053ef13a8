# hoop-rs task runner (https://github.com/casey/just). Every recipe is a plain cargo command,
# so nothing here is required: read a recipe and run its command directly if you like.

postgres_url := env_var_or_default("HOOP_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")

# Run the gateway on its embedded default (SQLite in ./hoop-data).
run *ARGS:
    cargo run -p hoop-gateway -- {{ARGS}}

# Run every test (SQLite; PostgreSQL too when HOOP_TEST_POSTGRES_URL is set).
test:
    cargo test --workspace

# Run every test on SQLite and on the local PostgreSQL.
test-all:
    HOOP_TEST_POSTGRES_URL={{postgres_url}} cargo test --workspace

# Formatting, clippy and the rustdoc of hoop-core.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p hoop-core -p hoop-store -p hoop-testkit

# Benchmarks (results and machine go in BENCHMARKS.md).
bench:
    cargo build --release -p hoop-gateway && cargo run --release -p hoop-bench

# Licenses, bans and sources of every dependency.
deny:
    cargo deny check bans licenses sources

# What CI runs.
ci:
    bash .ci/run
