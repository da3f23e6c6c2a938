//! A client: configuration, one HTTP agent (keep-alive pool) and one token
//! source, shared by every transfer and thread.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::{build_agent, HttpSettings};
use crate::redis::{RedisStore, StoreSettings};
use crate::token::{Origin, TokenSource};
use std::sync::Mutex;

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
        let mut kept = crate::sync::lock(&self.client.read_buffers);
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
                    crate::auth::TokenApi::GetToken => "corp",
                    _ => "app",
                };
                Some(RedisStore::new(&StoreSettings {
                    url,
                    namespace: &format!("{kind}:{id}"),
                    connect_timeout: config.token_store_connect_timeout,
                    command_timeout: config.token_store_command_timeout,
                    ca_file: config.ca_file.as_deref(),
                    allow_local_fetch: config.token_store_fallback,
                })?)
            }
            (Some(_), None) => {
                return Err(Error::InvalidArg(
                    "a token store needs credentials (wxm_config_set_credentials)".into(),
                ))
            }
            _ => None,
        };
        let tokens = TokenSource::new(
            config.access_token.clone(),
            origin,
            store,
            config.events.clone(),
        );
        Ok(Client {
            config,
            agent,
            tokens,
            read_buffers: Mutex::new(Vec::new()),
        })
    }

    /// A read buffer (empty if none is kept; the reader sizes it).
    pub fn read_buffer(&self) -> ReadBuffer<'_> {
        let buf = crate::sync::lock(&self.read_buffers)
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

    /// A message fit for a host: no access_token, no secret (`crate::scrub`).
    pub fn clean_message(&self, msg: &str) -> String {
        self.tokens.secrets.clean(msg)
    }

    /// A failed request as its event tells it: the code and host-fit text.
    pub fn event_failure(&self, error: Option<&Error>) -> Option<(i32, String)> {
        error.map(|e| (e.code(), self.clean_message(&e.to_string())))
    }

    /// The error with its text made fit for a host (see `clean_message`).
    pub fn clean_error(&self, e: Error) -> Error {
        self.tokens.secrets.clean_error(e)
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
