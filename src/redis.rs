//! A token cache shared by every process of an app, in Redis: one cached
//! token per app, a lock so that one process fetches when it expires or is
//! rejected, and refresh-ahead before expiry.
//!
//! The `redis` crate (sync API, rustls with ring) speaks the protocol; this
//! file owns what the store means. Every failure of the store, an error
//! reply included, is `Error::TokenStore`, named by the store's URL without
//! its password.

use crate::error::{Error, Result};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a fetching process may hold the lock before others take over.
/// A token fetch is one small request; one that takes longer has stalled.
const LOCK_TTL: Duration = Duration::from_secs(15);
/// How often a waiting process looks for the token another one fetches.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// Deletes the lock only if this process still holds it.
const UNLOCK_SCRIPT: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// A parsed store URL: what to connect to, and how to name it in messages.
pub struct StoreUrl {
    /// Where to connect, without AUTH, SELECT or CLIENT SETINFO: those are
    /// sent by `RedisStore::connect` (see there).
    info: ConnectionInfo,
    /// `redis://user@host:port/db`: never the password.
    pub name: String,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    tls: bool,
}

/// Parses `redis[s]://[[user]:password@]host[:port][/db]`. A password is
/// always after a colon, so a lone `secret@` cannot end up in a message as
/// a user name.
pub fn parse_url(url: &str) -> Result<StoreUrl> {
    let bad = |why: &str| Error::InvalidArg(format!("Redis URL: {why}"));
    let (tls, rest) = match (url.strip_prefix("redis://"), url.strip_prefix("rediss://")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => return Err(bad("must start with redis:// or rediss://")),
    };
    if url.contains(|c: char| matches!(c, '?' | '#') || c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "must not hold a query, fragment, space or control character",
        ));
    }
    let authority = rest.split('/').next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if !userinfo.contains(':') {
            return Err(bad(
                "write a password as :password@ or user:password@ (a lone name@ is not allowed)",
            ));
        }
    }
    let info = url.into_connection_info().map_err(|e| {
        let text = e.to_string();
        // The crate's own words, unless they could quote the URL.
        match url.rsplit_once('@') {
            Some(_) => bad("not a valid URL"),
            None => bad(&text),
        }
    })?;
    let settings = info.redis_settings();
    let db = settings.db();
    if db < 0 {
        return Err(bad("database must be a number from 0"));
    }
    let (host, port) = match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            (host.clone(), *port)
        }
        _ => return Err(bad("needs a host")),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let user = settings
        .username()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let scheme = if tls { "rediss" } else { "redis" };
    let name = format!("{scheme}://{user}{host}:{port}/{db}");
    let username = settings.username().map(str::to_string);
    let password = settings.password().map(str::to_string);
    let info =
        info.set_redis_settings(redis::RedisConnectionInfo::default().set_skip_set_lib_name());
    Ok(StoreUrl {
        info,
        name,
        username,
        password,
        db,
        tls,
    })
}

/// What a client's store is built from (see `Config`).
pub struct StoreSettings<'a> {
    pub url: &'a str,
    pub namespace: &'a str,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Also trusted for `rediss://`, beside the built-in roots.
    pub ca_file: Option<&'a str>,
    pub allow_local_fetch: bool,
}

/// A token as stored: the token and when to renew it (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub token: String,
    pub refresh_at: u64,
    pub expires_at: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn now_secs_pub() -> u64 {
    now_secs()
}

fn lock_value() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{}-{:016x}", std::process::id(), h.finish())
}

/// The built-in web PKI roots (the same Mozilla set ureq bundles) and the
/// host's CA file, as the PEM text the `redis` crate takes. Its own
/// choice would be the system's roots, or a CA file instead of them.
fn tls_roots_pem(ca_file: Option<&str>) -> Result<Vec<u8>> {
    use base64::Engine;
    let mut pem = Vec::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2048);
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    if let Some(path) = ca_file {
        let file = std::fs::read(path)
            .map_err(|e| Error::InvalidArg(format!("cannot read CA file {path:?}: {e}")))?;
        pem.extend_from_slice(&file);
        pem.push(b'\n');
    }
    Ok(pem)
}

pub struct RedisStore {
    client: redis::Client,
    name: String,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    tls: bool,
    key: String,
    lock_key: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// Whether a failing store lets this client fetch tokens alone.
    pub allow_local_fetch: bool,
    /// Times this client fetched alone because the store failed.
    pub fallbacks: AtomicU64,
}

/// How `RedisStore::obtain` gets a token when it must: (token, expires_in seconds).
pub type Fetch<'a> = dyn FnMut(bool) -> Result<(String, u64)> + 'a;

impl RedisStore {
    pub fn new(s: &StoreSettings) -> Result<RedisStore> {
        let url = parse_url(s.url)?;
        let client = if url.tls {
            // The crate builds its rustls config from the process default
            // provider: make that ring (what ureq uses), unless the process
            // already chose one. Without this, a Rust host whose build also
            // enables aws-lc-rs would make rustls panic.
            if rustls::crypto::CryptoProvider::get_default().is_none() {
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(tls_roots_pem(s.ca_file)?),
            };
            redis::Client::build_with_tls(url.info, certs).map_err(|e| {
                Error::InvalidArg(format!("token store {}: TLS setup: {e}", url.name))
            })?
        } else {
            redis::Client::open(url.info)
                .map_err(|e| Error::InvalidArg(format!("token store {}: {e}", url.name)))?
        };
        Ok(RedisStore {
            client,
            name: url.name,
            username: url.username,
            password: url.password,
            db: url.db,
            tls: url.tls,
            key: format!("wxmedia:token:{}", s.namespace),
            lock_key: format!("wxmedia:token-lock:{}", s.namespace),
            connect_timeout: s.connect_timeout,
            command_timeout: s.command_timeout,
            allow_local_fetch: s.allow_local_fetch,
            fallbacks: AtomicU64::new(0),
        })
    }

    /// The longest a process waits for another's fetch: the lock lapses
    /// after `LOCK_TTL` (its holder stored a token, gave up, or died), and
    /// then this process takes it; one command's time is added for the
    /// last look.
    pub fn wait_limit(&self) -> Duration {
        LOCK_TTL + self.command_timeout
    }

    /// The store's password, for the client's scrubber (`crate::scrub`).
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// A store failure, named by the store (never by its password).
    fn fail(&self, doing: &str, e: RedisError) -> Error {
        self.failure(doing, e, self.command_timeout)
    }

    fn failure(&self, doing: &str, e: RedisError, waited: Duration) -> Error {
        let why = if e.is_timeout() {
            format!("no answer within {} ms", waited.as_millis())
        } else {
            e.to_string()
        };
        Error::TokenStore(format!("{} ({doing}): {why}", self.name))
    }

    /// A new connection for each `obtain`: tokens are fetched rarely, and a
    /// store that went away is then seen at once, not through a dead socket.
    ///
    /// The connect timeout bounds TCP, the TLS handshake, AUTH and SELECT
    /// together. They are sent here, one at a time, rather than by the
    /// crate's set-up pipeline: after a first timeout that pipeline waits
    /// again for each of its remaining answers.
    fn connect(&self) -> Result<redis::Connection> {
        let deadline = Instant::now() + self.connect_timeout;
        let mut conn = self
            .client
            .get_connection_with_timeout(self.connect_timeout)
            .map_err(|e| self.failure("connecting", e, self.connect_timeout))?;
        let mut setup = |doing: &str, cmd: &redis::Cmd| -> Result<()> {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            conn.set_read_timeout(Some(left))
                .and_then(|_| conn.set_write_timeout(Some(left)))
                .and_then(|_| cmd.query::<()>(&mut conn))
                .map_err(|e| self.failure(doing, e, self.connect_timeout))
        };
        if let Some(pw) = &self.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &self.username {
                auth.arg(user);
            }
            setup("AUTH", auth.arg(pw))?;
        }
        if self.db != 0 {
            setup("SELECT", redis::cmd("SELECT").arg(self.db))?;
        }
        if self.tls && self.password.is_none() && self.db == 0 {
            // The handshake happens with the first command: make it this one.
            setup("TLS handshake", &redis::cmd("PING"))?;
        }
        conn.set_read_timeout(Some(self.command_timeout))
            .and_then(|_| conn.set_write_timeout(Some(self.command_timeout)))
            .map_err(|e| self.fail("setting timeouts", e))?;
        Ok(conn)
    }

    fn read(&self, conn: &mut redis::Connection) -> Result<Option<Entry>> {
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&self.key)
            .query(conn)
            .map_err(|e| self.fail("GET", e))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        // Anything unreadable counts as no token: it is overwritten.
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Ok(None);
        };
        let entry = (|| {
            Some(Entry {
                token: v.get("token")?.as_str()?.to_string(),
                refresh_at: v.get("refresh_at")?.as_u64()?,
                expires_at: v.get("expires_at")?.as_u64()?,
            })
        })();
        Ok(entry.filter(|e| crate::auth::check_token(&e.token).is_ok()))
    }

    fn write(&self, conn: &mut redis::Connection, token: &str, expires_in: u64) -> Result<Entry> {
        let now = now_secs();
        let margin = (expires_in / 10).min(300);
        let entry = Entry {
            token: token.to_string(),
            refresh_at: now + expires_in.saturating_sub(margin),
            expires_at: now + expires_in,
        };
        let value = serde_json::json!({
            "token": entry.token,
            "refresh_at": entry.refresh_at,
            "expires_at": entry.expires_at,
        })
        .to_string();
        redis::cmd("SET")
            .arg(&self.key)
            .arg(value)
            .arg("PX")
            .arg(expires_in.max(1).saturating_mul(1000))
            .query::<()>(conn)
            .map_err(|e| self.fail("SET token", e))?;
        Ok(entry)
    }

    fn try_lock(&self, conn: &mut redis::Connection, value: &str) -> Result<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(&self.lock_key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_TTL.as_millis() as u64)
            .query(conn)
            .map_err(|e| self.fail("SET lock", e))?;
        Ok(set.is_some())
    }

    fn unlock(&self, conn: &mut redis::Connection, value: &str) -> Result<()> {
        redis::cmd("EVAL")
            .arg(UNLOCK_SCRIPT)
            .arg(1)
            .arg(&self.lock_key)
            .arg(value)
            .query::<()>(conn)
            .map_err(|e| self.fail("releasing the lock", e))
    }

    /// A valid token for every process: the shared one, unless it is
    /// missing, expired or `rejected`; then exactly one process (the one
    /// that takes the lock) fetches and the others wait for its result, at
    /// most `wait_limit()`. Past `refresh_at`, one process renews while the
    /// others go on. A cancel or a host's heartbeat stops the wait.
    pub fn obtain(&self, rejected: Option<&str>, fetch: &mut Fetch) -> Result<Entry> {
        let mut conn = self.connect()?;
        let started = Instant::now();
        let me = lock_value();
        loop {
            let now = now_secs();
            if let Some(e) = self.read(&mut conn)? {
                let usable = Some(e.token.as_str()) != rejected && now < e.expires_at;
                if usable && now < e.refresh_at {
                    return Ok(e);
                }
                if usable {
                    // Refresh ahead: one process renews, the rest use this one.
                    if !self.try_lock(&mut conn, &me)? {
                        return Ok(e);
                    }
                    let renewed = self.fetch_and_store(&mut conn, false, fetch);
                    self.unlock(&mut conn, &me)?;
                    // A failed renewal leaves a token that still works.
                    return Ok(renewed.unwrap_or(e));
                }
            }
            if self.try_lock(&mut conn, &me)? {
                // Someone may have stored a new token just before we locked.
                let result = match self.read(&mut conn) {
                    Ok(Some(e))
                        if Some(e.token.as_str()) != rejected && now_secs() < e.expires_at =>
                    {
                        Ok(e)
                    }
                    Ok(_) => self.fetch_and_store(&mut conn, rejected.is_some(), fetch),
                    Err(e) => Err(e),
                };
                let unlocked = self.unlock(&mut conn, &me);
                return result.and_then(|entry| unlocked.map(|_| entry));
            }
            if started.elapsed() >= self.wait_limit() {
                return Err(Error::TokenStore(format!(
                    "{}: another process held the token lock for over {} ms without storing a token",
                    self.name,
                    self.wait_limit().as_millis()
                )));
            }
            // The transfer that waits can still be cancelled or stopped.
            if crate::cancel::cancelled_here() {
                return Err(Error::Cancelled);
            }
            crate::cancel::heartbeat()?;
            std::thread::sleep(WAIT_POLL);
            if crate::cancel::cancelled_here() {
                return Err(Error::Cancelled);
            }
        }
    }

    fn fetch_and_store(
        &self,
        conn: &mut redis::Connection,
        force: bool,
        fetch: &mut Fetch,
    ) -> Result<Entry> {
        let (token, expires_in) = fetch(force)?;
        self.write(conn, &token, expires_in)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("redis://127.0.0.1:6380/2").expect("url");
        assert_eq!(u.name, "redis://127.0.0.1:6380/2");
        assert!(!u.tls && u.password.is_none());
        let u = parse_url("redis://:pw@localhost").expect("url");
        assert_eq!(u.name, "redis://localhost:6379/0");
        assert_eq!(u.password.as_deref(), Some("pw"));
        let u = parse_url("rediss://user:p%40ss@h:1/").expect("url");
        assert_eq!(u.name, "rediss://user@h:1/0");
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert!(u.tls);
        let u = parse_url("redis://[::1]:7000/3").expect("url");
        assert_eq!(u.name, "redis://[::1]:7000/3");
        for bad in [
            "http://x",
            "redis://",
            "redis://h/x",
            "redis://h/-1",
            "redis://secret@h",
            "redis://h?protocol=resp3",
            "rediss://h#insecure",
            "redis://h /0",
        ] {
            let e = parse_url(bad).err();
            assert!(
                matches!(&e, Some(Error::InvalidArg(m)) if !m.contains("secret")),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn builtin_roots_parse_as_pem() {
        let pem = tls_roots_pem(None).expect("pem");
        let n = pem
            .windows(b"BEGIN CERTIFICATE".len())
            .filter(|w| w == b"BEGIN CERTIFICATE")
            .count();
        assert_eq!(n, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(redis::Client::build_with_tls(
            "rediss://127.0.0.1:1",
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem)
            }
        )
        .is_ok());
    }
}
