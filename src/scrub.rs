//! The one secret scrubber. Text from servers is cleaned of
//! `access_token=…`-style pairs where it is read (`pairs`); every message a
//! host can see is cleaned once more at the boundary by the client's
//! `Secrets`, which also know the client's own secrets: the app secret, the
//! token store's password, and the tokens it used lately, as they are and
//! as they appear in a query string.

use crate::error::Error;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Tokens remembered for scrubbing: a transfer's error may quote one that
/// was replaced since (by a refresh, or a host's rotation).
const KEPT_TOKENS: usize = 8;

/// Tokens shorter than this are not searched for: replacing them would
/// mangle a message rather than hide anything.
const SHORTEST_TOKEN: usize = 8;

/// Removes anything that reads as a credential pair from text that may
/// quote a URL or a server's words: `access_token=…`, `corpsecret=…`,
/// `secret=…`, and a presigned URL's `X-Amz-Signature=…` and
/// `X-Amz-Security-Token=…`.
pub fn pairs(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    'outer: while !rest.is_empty() {
        // A presigned object-store URL is a credential while it is valid.
        for key in [
            "access_token=",
            "corpsecret=",
            "secret=",
            "X-Amz-Signature=",
            "X-Amz-Security-Token=",
        ] {
            if let Some(stripped) = rest.strip_prefix(key) {
                out.push_str(key);
                out.push_str("***");
                let end = stripped
                    .find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace())
                    .unwrap_or(stripped.len());
                rest = &stripped[end..];
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// The secrets of one client, to be kept out of every message.
pub struct Secrets {
    /// The app secret and the token store's password.
    fixed: Vec<String>,
    tokens: Mutex<VecDeque<String>>,
}

impl Secrets {
    pub fn new(fixed: impl IntoIterator<Item = String>) -> Secrets {
        Secrets {
            fixed: fixed.into_iter().filter(|s| !s.is_empty()).collect(),
            tokens: Mutex::new(VecDeque::new()),
        }
    }

    /// A token this client now uses (set by the host, or fetched).
    pub fn remember_token(&self, token: &str) {
        if token.len() < SHORTEST_TOKEN {
            return;
        }
        let mut kept = crate::sync::lock(&self.tokens);
        if kept.iter().any(|t| t == token) {
            return;
        }
        if kept.len() == KEPT_TOKENS {
            kept.pop_front();
        }
        kept.push_back(token.to_string());
    }

    /// `text` fit for a host: no credential pair, no secret of this client.
    pub fn clean(&self, text: &str) -> String {
        let mut s = pairs(text);
        let tokens = crate::sync::lock(&self.tokens).clone();
        for secret in self.fixed.iter().chain(tokens.iter()) {
            let encoded = crate::range::query_encode(secret);
            if s.contains(secret.as_str()) || s.contains(&encoded) {
                s = s.replace(secret.as_str(), "***").replace(&encoded, "***");
            }
        }
        s
    }

    /// The error with its text made fit for a host (see `clean`).
    pub fn clean_error(&self, e: Error) -> Error {
        e.map_text(|t| self.clean(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_hide_credentials() {
        let s = pairs("GET /x?access_token=abc123&media_id=m corpsecret=zz secret=q");
        let u = pairs("PUT /b/k?X-Amz-Security-Token=tok9&X-Amz-Signature=sig7&partNumber=1");
        assert!(
            !u.contains("tok9") && !u.contains("sig7") && u.contains("partNumber=1"),
            "{u}"
        );
        assert!(
            !s.contains("abc123") && !s.contains("zz") && !s.ends_with('q'),
            "{s}"
        );
        assert!(s.contains("media_id=m"));
    }

    #[test]
    fn every_known_secret_is_hidden_as_is_and_encoded() {
        let secrets = Secrets::new(["the-app-secret".to_string(), "store pw".to_string()]);
        let old = "tok/en+with=odd chars";
        secrets.remember_token(old);
        for i in 0..KEPT_TOKENS - 1 {
            secrets.remember_token(&format!("later-token-{i}"));
        }
        for e in [
            Error::wechat(40001, format!("access_token is {old}")),
            Error::Protocol(format!("url ...?token={}", crate::range::query_encode(old))),
            Error::HttpStatus {
                status: 500,
                detail: "the-app-secret and store pw".into(),
            },
            Error::Network(format!("later-token-3 {old}")),
        ] {
            let code = e.code();
            let clean = secrets.clean_error(e);
            assert_eq!(clean.code(), code);
            let s = clean.to_string();
            for secret in [old, "the-app-secret", "store pw", "later-token-3"] {
                assert!(!s.contains(secret), "{s}");
                assert!(!s.contains(&crate::range::query_encode(secret)), "{s}");
            }
        }
        // The oldest token is forgotten once more are kept; short ones are
        // never searched for (they would mangle the text).
        secrets.remember_token("one-more-token");
        assert!(secrets.clean(old).contains(old));
        secrets.remember_token("ab");
        assert_eq!(secrets.clean("ab"), "ab");
    }
}
