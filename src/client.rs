//! A client: configuration, one HTTP agent (keep-alive pool) and one token
//! source, shared by every transfer and thread.

use crate::config::Config;
use crate::error::{scrub, Error, Result};
use crate::http::{build_agent, HttpSettings};
use crate::redis::RedisStore;
use crate::retry::{Effect, Reached, Retry};
use crate::token::{Origin, TokenSource};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;

pub struct Client {
    pub config: Config,
    pub agent: ureq::Agent,
    pub tokens: TokenSource,
    /// Read buffers of finished transfers, for the next ones: a fresh one is
    /// zeroed (and page-faulted in) on every download otherwise, a cost
    /// that shows on small media.
    read_buffers: Mutex<Vec<Vec<u8>>>,
}

/// Buffers kept per client: enough for one per worker of a parallel
/// download and a few concurrent transfers.
const KEPT_READ_BUFFERS: usize = 8;

/// A read buffer lent by the client, given back when dropped.
pub struct ReadBuffer<'c> {
    pub buf: Vec<u8>,
    client: &'c Client,
}

impl Drop for ReadBuffer<'_> {
    fn drop(&mut self) {
        let mut kept = crate::token::lock(&self.client.read_buffers);
        if kept.len() < KEPT_READ_BUFFERS && !self.buf.is_empty() {
            kept.push(std::mem::take(&mut self.buf));
        }
    }
}

impl Client {
    pub fn new(config: Config) -> Result<Client> {
        let agent = build_agent(&HttpSettings {
            connect_timeout: config.connect_timeout,
            io_timeout: config.io_timeout,
            pool_size: config.parallelism as usize,
            ca_file: config.ca_file.clone(),
        })?;
        Client::with_agent(config, agent)
    }

    /// A client whose requests go through `agent` (unit tests give one
    /// over a scripted transport, `crate::testing`).
    pub(crate) fn with_agent(config: Config, agent: ureq::Agent) -> Result<Client> {
        warm_up_process();
        let origin = match (&config.token_provider, &config.credentials) {
            (Some(p), _) => Origin::Provider(p.clone()),
            (None, Some((id, secret))) => Origin::WeChat {
                api: config.token_api,
                id: id.clone(),
                secret: secret.clone(),
            },
            (None, None) => Origin::Static,
        };
        let store = match (&config.token_store, &config.credentials) {
            (Some(url), Some((id, _))) => {
                let kind = match config.token_api {
                    crate::config::TokenApi::GetToken => "corp",
                    _ => "app",
                };
                Some(RedisStore::new(url, &format!("{kind}:{id}"))?)
            }
            (Some(_), None) => {
                return Err(Error::InvalidArg(
                    "a token store needs credentials (wxm_config_set_credentials)".into(),
                ))
            }
            _ => None,
        };
        let tokens = TokenSource::new(config.access_token.clone(), origin, store);
        Ok(Client {
            config,
            agent,
            tokens,
            read_buffers: Mutex::new(Vec::new()),
        })
    }

    /// A read buffer (empty if none is kept; the reader sizes it).
    pub fn read_buffer(&self) -> ReadBuffer<'_> {
        let buf = crate::token::lock(&self.read_buffers)
            .pop()
            .unwrap_or_default();
        ReadBuffer { buf, client: self }
    }

    pub fn token(&self) -> Result<String> {
        self.tokens.get(&self.agent, &self.config.base_url)
    }

    /// Called when WeChat rejected `used`: a fresh token if credentials
    /// allow, else the rejection itself.
    pub fn refresh_token(&self, used: &str, rejection: Error) -> Result<String> {
        if !self.tokens.can_refresh() {
            return Err(rejection);
        }
        self.tokens
            .refresh_after_rejection(&self.agent, &self.config.base_url, used)
    }

    /// A message fit for a host: no access_token, no secret.
    pub fn clean_message(&self, msg: &str) -> String {
        let mut s = scrub(msg);
        if let Some(secret) = self.tokens.secret() {
            if !secret.is_empty() {
                s = s.replace(secret, "***");
            }
        }
        if let Some(token) = self.tokens.peek() {
            if token.len() >= 8 {
                s = s.replace(&token, "***");
            }
        }
        s
    }

    /// The error with its text made fit for a host (see `clean_message`).
    pub fn clean_error(&self, e: Error) -> Error {
        e.map_text(|t| self.clean_message(t))
    }

    /// Exponential backoff with jitter for attempt `n` (1-based), capped.
    pub fn backoff(&self, n: u32) -> Duration {
        let base = self.config.backoff.as_millis() as u64;
        let exp = base.saturating_mul(1u64 << n.saturating_sub(1).min(10));
        let capped = exp.min(10_000);
        // Jitter in [50%, 150%) so that parallel workers and processes spread out.
        let jitter = 50 + (pseudo_random() % 100);
        Duration::from_millis(capped * jitter / 100)
    }
}

/// Cheap per-call randomness for jitter; not for anything secret.
fn pseudo_random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

impl Client {
    /// POSTs a JSON body to `cgi-bin/{path}` with the token, and returns the
    /// answer's fields (a non-zero errcode is an error). Failures are
    /// retried as `effect` allows (`crate::retry`): a job submission is
    /// never sent twice.
    pub fn call_api(
        &self,
        path: &'static str,
        body: &serde_json::Value,
        effect: Effect,
        cancel: &AtomicBool,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        let payload = body.to_string();
        let mut retry = Retry::new(self, effect, path);
        loop {
            crate::cancel::check_cancel(cancel)?;
            let token = self.token()?;
            let url = format!(
                "{}/cgi-bin/{path}?access_token={}",
                self.config.base_url,
                crate::range::query_encode(&token)
            );
            let mut reached = Reached::Server;
            let attempt = self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(payload.as_bytes())
                .map_err(|e| {
                    if crate::http::sent_nothing(&e) {
                        reached = Reached::Nowhere;
                    }
                    crate::http::map_ureq(e)
                })
                .and_then(|response| {
                    let status = response.status().as_u16();
                    let bytes = crate::http::read_small_body(response.into_body())?;
                    if status != 200 {
                        return Err(Error::HttpStatus {
                            status,
                            detail: path.to_string(),
                        });
                    }
                    crate::http::parse_api_json(&bytes)
                })
                .map_err(|e| crate::http::redact(e, &token));
            match attempt {
                Ok(map) => return Ok(map),
                Err(e) => retry.after_failure(e, reached, Some(&token), cancel)?,
            }
        }
    }
}

/// One-time process set-up done here rather than inside the first transfer
/// (as libcurl's global init does): the HTTP parser asks std which SIMD
/// instructions the CPU has, and std's first answer runs CPUID, which traps
/// to the hypervisor on a VM (~50 us measured on the 2-core bench VM).
fn warm_up_process() {
    #[cfg(target_arch = "x86_64")]
    {
        let _ = std::is_x86_feature_detected!("sse4.2");
    }
}
