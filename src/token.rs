//! access_token sources: a static token the host sets (and may rotate), or
//! credentials with a cache and a single-flight refresh.

use crate::config::TokenApi;
use crate::error::{Error, Result};
use crate::http::{self, read_small_body};
use crate::range::query_encode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Cached {
    token: String,
    /// Refresh when this passes: shortly before WeChat's expiry.
    refresh_at: Instant,
}

pub struct TokenSource {
    api: TokenApi,
    credentials: Option<(String, String)>,
    /// The token in use: host-set, or fetched. Read on every request.
    current: Mutex<Option<Cached>>,
    /// Held while fetching, so N threads that find the token expired cause
    /// one fetch: the others wait and then take its result.
    refreshing: Mutex<()>,
    /// Fetches made, for tests and diagnostics.
    pub fetches: AtomicU64,
}

impl TokenSource {
    pub fn new(
        api: TokenApi,
        token: Option<String>,
        credentials: Option<(String, String)>,
    ) -> TokenSource {
        let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        TokenSource {
            api,
            credentials,
            current: Mutex::new(token.map(|t| Cached {
                token: t,
                refresh_at: far,
            })),
            refreshing: Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The secret, so messages can be scrubbed of it.
    pub fn secret(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(_, s)| s.as_str())
    }

    pub fn set(&self, token: String) {
        let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        *lock(&self.current) = Some(Cached {
            token,
            refresh_at: far,
        });
    }

    fn fresh(&self) -> Option<String> {
        let cur = lock(&self.current);
        cur.as_ref()
            .filter(|c| self.credentials.is_none() || Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// A token to use now, fetching one if needed.
    pub fn get(&self, agent: &ureq::Agent, base_url: &str) -> Result<String> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        if self.credentials.is_none() {
            return Err(Error::NoToken);
        }
        let _one_at_a_time = lock(&self.refreshing);
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        self.fetch(agent, base_url, false)
    }

    /// `rejected` was refused by WeChat: fetch a new one unless another
    /// thread already did. Without credentials the rejection is final.
    pub fn refresh_after_rejection(
        &self,
        agent: &ureq::Agent,
        base_url: &str,
        rejected: &str,
    ) -> Result<String> {
        if self.credentials.is_none() {
            return Err(Error::NoToken);
        }
        let _one_at_a_time = lock(&self.refreshing);
        if let Some(cur) = lock(&self.current).as_ref() {
            if cur.token != rejected && Instant::now() < cur.refresh_at {
                return Ok(cur.token.clone());
            }
        }
        self.fetch(agent, base_url, true)
    }

    fn fetch(&self, agent: &ureq::Agent, base_url: &str, force: bool) -> Result<String> {
        let Some((id, secret)) = &self.credentials else {
            return Err(Error::NoToken);
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let response = match self.api {
            TokenApi::GetToken => agent
                .get(&format!(
                    "{base_url}/cgi-bin/gettoken?corpid={}&corpsecret={}",
                    query_encode(id),
                    query_encode(secret)
                ))
                .call(),
            TokenApi::Classic => agent
                .get(&format!(
                    "{base_url}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
                    query_encode(id),
                    query_encode(secret)
                ))
                .call(),
            TokenApi::Stable => {
                let body = serde_json::json!({
                    "grant_type": "client_credential",
                    "appid": id,
                    "secret": secret,
                    "force_refresh": force,
                })
                .to_string();
                agent
                    .post(&format!("{base_url}/cgi-bin/stable_token"))
                    .header("Content-Type", "application/json")
                    .send(body.as_bytes())
            }
        }
        .map_err(http::map_ureq)?;
        let status = response.status().as_u16();
        let bytes = read_small_body(response.into_body())?;
        if status != 200 {
            return Err(Error::HttpStatus {
                status,
                detail: "token endpoint".into(),
            });
        }
        let map = http::parse_api_json(&bytes).map_err(|e| match e {
            Error::WeChat { code, msg } => Error::WeChat {
                code,
                msg: format!("fetching access_token: {msg}"),
            },
            other => other,
        })?;
        let token = map
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| crate::config::check_token(t).is_ok())
            .ok_or_else(|| Error::Protocol("token answer without a usable access_token".into()))?
            .to_string();
        let expires_in = map
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .unwrap_or(7200);
        // Renew ahead of expiry: 5 minutes, or a tenth of a short lifetime.
        let margin = (expires_in / 10).min(300);
        let refresh_at = Instant::now() + Duration::from_secs(expires_in.saturating_sub(margin));
        *lock(&self.current) = Some(Cached {
            token: token.clone(),
            refresh_at,
        });
        Ok(token)
    }
}

/// A poisoned lock only means another thread panicked while holding it; the
/// data (a token) is still consistent, so go on with it.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
