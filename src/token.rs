//! access_token sources: a static token the host sets (and may rotate), or
//! credentials with a cache and a single-flight refresh.

use crate::auth::{check_token, ProviderFn, TokenApi};
use crate::error::{Error, Result};
use crate::event::{Events, Kind, Level, TokenOrigin};
use crate::http::{self, DEFAULT_SMALL_ANSWER_TIME};
use crate::range::query_encode;
use crate::redis::RedisStore;
use crate::scrub::Secrets;
use crate::sync::lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Cached {
    token: String,
    /// Refresh when this passes: shortly before WeChat's expiry.
    refresh_at: Instant,
}

/// Where new tokens come from.
pub enum Origin {
    /// Only what the host sets: a rejection is final.
    Static,
    /// WeChat's token endpoint, with credentials.
    WeChat {
        api: TokenApi,
        id: String,
        secret: String,
    },
    /// The host's callback.
    Provider(ProviderFn),
}

pub struct TokenSource {
    origin: Origin,
    /// Shared by every process of the app, when configured.
    store: Option<RedisStore>,
    /// The token in use: host-set, or fetched. Read on every request.
    current: Mutex<Option<Cached>>,
    /// Held while fetching, so N threads that find the token expired cause
    /// one fetch: the others wait and then take its result.
    refreshing: Mutex<()>,
    /// Fetches from WeChat or the provider, for tests and diagnostics.
    pub fetches: AtomicU64,
    /// What messages must never show: the secret, the store's password,
    /// and every token this source handed out lately.
    pub secrets: Secrets,
    /// The client's event handler: fetches, refreshes, the store's sharing
    /// and fallbacks are reported.
    events: Events,
}

impl TokenSource {
    /// Times a failing token store made this client fetch alone (0
    /// without a store).
    pub fn store_fallbacks(&self) -> u64 {
        self.store
            .as_ref()
            .map_or(0, |s| s.fallbacks.load(Ordering::Relaxed))
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

impl TokenSource {
    pub fn new(
        token: Option<String>,
        origin: Origin,
        store: Option<RedisStore>,
        events: Events,
    ) -> TokenSource {
        let secrets = Secrets::new(
            [
                match &origin {
                    Origin::WeChat { secret, .. } => Some(secret.clone()),
                    _ => None,
                },
                store
                    .as_ref()
                    .and_then(|s| s.password().map(str::to_string)),
            ]
            .into_iter()
            .flatten(),
        );
        if let Some(t) = &token {
            secrets.remember_token(t);
        }
        TokenSource {
            secrets,
            origin,
            store,
            current: Mutex::new(token.map(|t| Cached {
                token: t,
                refresh_at: far_future(),
            })),
            refreshing: Mutex::new(()),
            fetches: AtomicU64::new(0),
            events,
        }
    }

    /// Whether a rejected token can be replaced.
    pub fn can_refresh(&self) -> bool {
        !matches!(self.origin, Origin::Static)
    }

    pub fn set(&self, token: String) {
        self.secrets.remember_token(&token);
        *lock(&self.current) = Some(Cached {
            token,
            refresh_at: far_future(),
        });
    }

    fn fresh(&self) -> Option<String> {
        let cur = lock(&self.current);
        cur.as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// The single-flight turn to fetch. A transfer that waits for another
    /// thread's fetch still sees its cancel and its host's heartbeat.
    fn wait_turn(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        loop {
            match self.refreshing.try_lock() {
                Ok(g) => return Ok(g),
                Err(std::sync::TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {
                    if crate::cancel::cancelled_here() {
                        return Err(Error::Cancelled);
                    }
                    crate::cancel::heartbeat()?;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    /// A token to use now, fetching one if needed.
    pub fn get(&self, agent: &ureq::Agent, base_url: &str) -> Result<String> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        if !self.can_refresh() {
            // A static token never expires locally; none was set.
            return lock(&self.current)
                .as_ref()
                .map(|c| c.token.clone())
                .ok_or(Error::NoToken);
        }
        let _one_at_a_time = self.wait_turn()?;
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        self.obtain(agent, base_url, None)
    }

    /// `rejected` was refused by WeChat: get a new one unless another
    /// thread already did. Without a way to refresh, the rejection is final.
    pub fn refresh_after_rejection(
        &self,
        agent: &ureq::Agent,
        base_url: &str,
        rejected: &str,
    ) -> Result<String> {
        if !self.can_refresh() {
            return Err(Error::NoToken);
        }
        let _one_at_a_time = self.wait_turn()?;
        if let Some(cur) = lock(&self.current).as_ref() {
            if cur.token != rejected && Instant::now() < cur.refresh_at {
                return Ok(cur.token.clone());
            }
        }
        self.obtain(agent, base_url, Some(rejected))
    }

    /// Gets a token from the store, WeChat or the provider, and caches it.
    fn obtain(
        &self,
        agent: &ureq::Agent,
        base_url: &str,
        rejected: Option<&str>,
    ) -> Result<String> {
        let force = rejected.is_some();
        let started = Instant::now();
        // Where the token came from, as events tell it.
        let mut came_from = TokenOrigin::Credentials;
        let (token, refresh_at) = match (&self.origin, &self.store) {
            (Origin::Static, _) => return Err(Error::NoToken),
            (Origin::Provider(p), _) => {
                came_from = TokenOrigin::Provider;
                self.fetches.fetch_add(1, Ordering::Relaxed);
                let t = (p.0)(force)?;
                check_token(&t).map_err(|_| {
                    Error::Protocol("the token provider gave an invalid token".into())
                })?;
                (t, far_future())
            }
            (Origin::WeChat { .. }, Some(store)) => {
                // A token fetched before the store failed (storing it, or
                // releasing the lock) is used rather than fetched again.
                let mut fetched = None;
                let shared = store.obtain(rejected, &mut |force| {
                    self.fetch_wechat(agent, base_url, force)
                        .inspect(|t| fetched = Some(t.clone()))
                });
                match shared {
                    Ok(entry) => {
                        if fetched.is_none() {
                            came_from = TokenOrigin::Store;
                        }
                        let left = entry
                            .refresh_at
                            .saturating_sub(crate::redis::now_secs_pub());
                        (entry.token, Instant::now() + Duration::from_secs(left))
                    }
                    // Only a failing store may fall back, and only when the
                    // host chose it: on the Official Account every local
                    // fetch invalidates the other processes' tokens.
                    Err(Error::TokenStore(why)) if store.allow_local_fetch => {
                        store.fallbacks.fetch_add(1, Ordering::Relaxed);
                        self.events.emit(Level::Warning, Kind::Fallback, |e| {
                            e.token_origin = TokenOrigin::Credentials;
                            e.errcode = crate::error::WXM_E_TOKEN_STORE;
                            e.message = self.secrets.clean(&format!(
                                "the token store failed ({why}): fetching the token \
                                 locally, as the host allowed"
                            ));
                        });
                        match fetched {
                            Some((token, expires_in)) => (token, refresh_instant(expires_in)),
                            None => self.fetch_local(agent, base_url, force)?,
                        }
                    }
                    // WeChat's refusal, a cancel, or the store's failure.
                    Err(e) => return Err(e),
                }
            }
            (Origin::WeChat { .. }, None) => self.fetch_local(agent, base_url, force)?,
        };
        self.secrets.remember_token(&token);
        *lock(&self.current) = Some(Cached {
            token: token.clone(),
            refresh_at,
        });
        let (kind, what) = match (came_from, force) {
            (TokenOrigin::Store, _) => (Kind::TokenShared, "taken from the token store"),
            (_, true) => (Kind::TokenRefreshed, "refreshed after a rejection"),
            (_, false) => (Kind::TokenFetched, "fetched"),
        };
        // Counted where it is fetched, as its event is: the workers that
        // met the same rejection and took this token refreshed nothing.
        if kind == Kind::TokenRefreshed {
            crate::event::add(|c| &c.token_refreshes, 1);
        }
        self.events.emit(Level::Info, kind, |e| {
            e.token_origin = came_from;
            e.token_fetch_us = crate::event::micros_since(started);
            e.duration_us = e.token_fetch_us;
            e.message = format!("access_token {what} ({came_from:?})");
        });
        Ok(token)
    }

    fn fetch_local(
        &self,
        agent: &ureq::Agent,
        base_url: &str,
        force: bool,
    ) -> Result<(String, Instant)> {
        let (token, expires_in) = self.fetch_wechat(agent, base_url, force)?;
        Ok((token, refresh_instant(expires_in)))
    }

    /// One request to WeChat's token endpoint: (token, expires_in seconds).
    fn fetch_wechat(
        &self,
        agent: &ureq::Agent,
        base_url: &str,
        force: bool,
    ) -> Result<(String, u64)> {
        let Origin::WeChat { api, id, secret } = &self.origin else {
            return Err(Error::NoToken);
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let response = match api {
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
        let map = http::read_api_answer(response, DEFAULT_SMALL_ANSWER_TIME, "token endpoint")
            .map_err(|e| match e {
                Error::WeChat { code, msg } => Error::WeChat {
                    code,
                    msg: format!("fetching access_token: {msg}"),
                },
                other => other,
            })
            // A token endpoint may quote the secret back ("corpsecret is
            // …"): `secrets` cleans it out at the boundary.
            ?;
        let token = map
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| check_token(t).is_ok())
            .ok_or_else(|| Error::Protocol("token answer without a usable access_token".into()))?
            .to_string();
        let expires_in = map
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .unwrap_or(7200);
        Ok((token, expires_in))
    }
}

/// When to renew a token that lives `expires_in` seconds: 5 minutes
/// ahead, or a tenth of a short lifetime.
fn refresh_instant(expires_in: u64) -> Instant {
    let margin = (expires_in / 10).min(300);
    Instant::now() + Duration::from_secs(expires_in.saturating_sub(margin))
}
