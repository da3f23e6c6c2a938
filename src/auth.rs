//! The vocabulary of access tokens, shared by the configuration, the token
//! source and the token store (a leaf: it imports none of them).

use crate::error::{Error, Result};
use std::sync::Arc;

/// Which endpoint issues tokens from credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenApi {
    /// `cgi-bin/gettoken?corpid&corpsecret` (WeCom, kf).
    GetToken,
    /// `cgi-bin/stable_token` (Official Account, Mini Program).
    Stable,
    /// `cgi-bin/token?grant_type=client_credential` (Official Account, Mini Program).
    Classic,
}

/// A host's token provider: called with `force_refresh` when the previous
/// token was rejected. Every holder (a config, a client, hence each of its
/// transfers) keeps a clone; the closure is dropped with the last one,
/// which is when the C ABI's `free_fn` releases the host's data.
#[derive(Clone)]
pub struct ProviderFn(pub Arc<dyn Fn(bool) -> Result<String> + Send + Sync>);

impl std::fmt::Debug for ProviderFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderFn")
    }
}

/// A token WeChat could have issued: visible ASCII, of a sane length.
pub fn check_token(token: &str) -> Result<()> {
    // WeChat tokens are at most 512 visible ASCII characters; anything else
    // would corrupt the request line.
    if token.is_empty() || token.len() > 2048 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidArg(
            "access_token must be 1 to 2048 visible ASCII characters".into(),
        ));
    }
    Ok(())
}
