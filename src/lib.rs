//! wxmedia: WeChat / WeCom temporary media (临时素材) — aligned Range
//! downloads and streaming multipart uploads — behind a C ABI.
//!
//! The core (`range`, `token`, `download`, `upload`) knows nothing of C;
//! `ffi` knows nothing of HTTP. ARCHITECTURE.md maps the modules. Public
//! modules are what the C ABI, the CLI, the tests and the fuzz targets
//! use; the rest is `pub(crate)`.

// Supported and tested: Linux (x86_64; the transport uses Linux socket
// options and mmap). Anything else fails here rather than in an untested
// branch.
#[cfg(not(target_os = "linux"))]
compile_error!("wxmedia supports Linux only");

pub(crate) mod api;
pub mod auth;
pub(crate) mod cancel;
pub mod client;
pub mod config;
pub mod download;
pub mod error;
pub mod event;
pub mod http;
pub mod md5;
pub mod objstore;
pub mod range;
pub(crate) mod redis;
pub(crate) mod retry;
pub(crate) mod scrub;
pub(crate) mod sync;
pub(crate) mod tcp;
pub(crate) mod to_object;
pub(crate) mod token;
pub mod transfer;
pub mod upload;
pub mod url_upload;

#[cfg(test)]
mod testing;

pub mod ffi;

pub use client::Client;
pub use config::{Config, Platform};
pub use error::{Error, Result};
pub use transfer::{Download, Upload, UrlUpload};
