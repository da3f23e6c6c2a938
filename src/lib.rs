//! wxmedia: WeChat / WeCom temporary media (临时素材) — aligned Range
//! downloads and streaming multipart uploads — behind a C ABI.
//!
//! The core (`range`, `token`, `download`, `upload`) knows nothing of C;
//! `ffi` knows nothing of HTTP.

// Supported and tested: Linux (x86_64; the transport uses Linux socket
// options and mmap). Anything else fails here rather than in an untested
// branch.
#[cfg(not(target_os = "linux"))]
compile_error!("wxmedia supports Linux only");

pub mod cancel;
pub mod client;
pub mod config;
pub mod download;
pub mod error;
pub mod http;
pub mod md5;
pub mod range;
pub mod redis;
pub mod retry;
pub mod tcp;
pub mod token;
pub mod upload;
pub mod url_upload;

#[cfg(test)]
mod testing;

pub mod ffi;

pub use client::Client;
pub use config::{Config, Platform};
pub use error::{Error, Result};
