//! The integration tests: one binary, one module per area, all driving the
//! library through its C ABI against real servers on loopback (the bundled
//! emulator, a TLS proxy in front of it, or a raw server for hostile
//! answers). Shared helpers live in `support`.
//!
//! Run one area with `cargo test --test it download::`, one test with
//! `cargo test --test it -- --exact download::small_plain_file_to_sink` (for example).

mod support;

mod abi;
mod chaos;
mod download;
mod events;
mod file_faults;
mod header;
mod hostile;
mod kill;
mod misuse;
mod objstore;
mod progress;
mod race;
mod tls;
mod to_path;
mod tokens;
mod upload;
mod url_upload;
