//! A token cache shared by every process of an app, in Redis: one cached
//! token per app, a lock so that one process fetches when it expires or is
//! rejected, and refresh-ahead before expiry.
//!
//! A minimal RESP2 client over a plain TCP socket (GET, SET NX PX, EVAL):
//! the handful of commands needed do not justify a Redis crate.

use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a fetching process may hold the lock before others take over.
const LOCK_MS: u64 = 15_000;
/// How long a process waits for another's fetch before fetching itself.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(20);
/// Replies larger than this are refused (a token entry is a few hundred bytes).
const MAX_REPLY: usize = 64 * 1024;

/// Deletes the lock only if this process still holds it.
const UNLOCK_SCRIPT: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub addr: String,
    pub password: Option<String>,
    pub username: Option<String>,
    pub db: u32,
}

/// Parses `redis://[[user]:password@]host[:port][/db]`.
pub fn parse_url(url: &str) -> Result<RedisUrl> {
    let bad = |why: &str| Error::InvalidArg(format!("Redis URL: {why}"));
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| bad("must start with redis://"))?;
    let (auth, hostpart) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let (hostport, db) = match hostpart.split_once('/') {
        Some((h, d)) if !d.is_empty() => {
            (h, d.parse().map_err(|_| bad("database must be a number"))?)
        }
        Some((h, _)) => (h, 0),
        None => (hostpart, 0),
    };
    if hostport.is_empty() {
        return Err(bad("no host"));
    }
    let addr = if hostport.starts_with('[')
        || hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:6379")
    };
    let (username, password) = match auth {
        None => (None, None),
        Some(a) => match a.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
            None => (None, Some(a.to_string())),
        },
    };
    Ok(RedisUrl {
        addr,
        password,
        username,
        db,
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(url: &RedisUrl) -> Result<Conn> {
        let stream = TcpStream::connect(&url.addr)
            .map_err(|e| Error::Network(format!("Redis at {}: {e}", url.addr)))?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
        stream.set_write_timeout(Some(IO_TIMEOUT)).ok();
        stream.set_nodelay(true).ok();
        let mut conn = Conn {
            reader: BufReader::new(stream),
        };
        if let Some(pw) = &url.password {
            let reply = match &url.username {
                Some(user) => conn.cmd(&[b"AUTH", user.as_bytes(), pw.as_bytes()])?,
                None => conn.cmd(&[b"AUTH", pw.as_bytes()])?,
            };
            if let Reply::Error(e) = reply {
                return Err(Error::Network(format!("Redis AUTH failed: {e}")));
            }
        }
        if url.db != 0 {
            if let Reply::Error(e) = conn.cmd(&[b"SELECT", url.db.to_string().as_bytes()])? {
                return Err(Error::Network(format!("Redis SELECT failed: {e}")));
            }
        }
        Ok(conn)
    }

    fn cmd(&mut self, args: &[&[u8]]) -> Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.reader
            .get_mut()
            .write_all(&out)
            .map_err(|e| Error::Network(format!("Redis write: {e}")))?;
        read_reply(&mut self.reader, 0)
    }
}

fn read_line(r: &mut impl BufRead) -> Result<String> {
    let mut line = Vec::new();
    r.take(MAX_REPLY as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::Network(format!("Redis read: {e}")))?;
    if !line.ends_with(b"\r\n") {
        return Err(Error::Protocol(
            "Redis reply line malformed or too long".into(),
        ));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| Error::Protocol("Redis reply not UTF-8".into()))
}

fn read_reply(r: &mut impl BufRead, depth: u32) -> Result<Reply> {
    if depth > 4 {
        return Err(Error::Protocol("Redis reply nested too deeply".into()));
    }
    let line = read_line(r)?;
    let (kind, rest) = line.split_at(line.len().min(1));
    let num = || -> Result<i64> {
        rest.parse()
            .map_err(|_| Error::Protocol("Redis reply: bad number".into()))
    };
    Ok(match kind {
        "+" => Reply::Simple(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(num()?),
        "$" => {
            let n = num()?;
            if n < 0 {
                Reply::Bulk(None)
            } else if n as usize > MAX_REPLY {
                return Err(Error::Protocol("Redis bulk reply too large".into()));
            } else {
                let mut buf = vec![0u8; n as usize + 2];
                r.read_exact(&mut buf)
                    .map_err(|e| Error::Network(format!("Redis read: {e}")))?;
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
        }
        "*" => {
            let n = num()?;
            if n < 0 {
                Reply::Array(None)
            } else if n > 64 {
                return Err(Error::Protocol("Redis array reply too large".into()));
            } else {
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(read_reply(r, depth + 1)?);
                }
                Reply::Array(Some(items))
            }
        }
        _ => return Err(Error::Protocol("Redis reply of unknown type".into())),
    })
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

pub struct RedisStore {
    url: RedisUrl,
    key: String,
    lock_key: String,
}

/// How `RedisStore::obtain` gets a token when it must: (token, expires_in seconds).
pub type Fetch<'a> = dyn FnMut(bool) -> Result<(String, u64)> + 'a;

impl RedisStore {
    pub fn new(url: &str, namespace: &str) -> Result<RedisStore> {
        Ok(RedisStore {
            url: parse_url(url)?,
            key: format!("wxmedia:token:{namespace}"),
            lock_key: format!("wxmedia:token-lock:{namespace}"),
        })
    }

    fn read(&self, conn: &mut Conn) -> Result<Option<Entry>> {
        let Reply::Bulk(Some(bytes)) = conn.cmd(&[b"GET", self.key.as_bytes()])? else {
            return Ok(None);
        };
        let v: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        let entry = (|| {
            Some(Entry {
                token: v.get("token")?.as_str()?.to_string(),
                refresh_at: v.get("refresh_at")?.as_u64()?,
                expires_at: v.get("expires_at")?.as_u64()?,
            })
        })();
        Ok(entry.filter(|e| crate::config::check_token(&e.token).is_ok()))
    }

    fn write(&self, conn: &mut Conn, token: &str, expires_in: u64) -> Result<Entry> {
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
        let ttl_ms = (expires_in.max(1) * 1000).to_string();
        match conn.cmd(&[
            b"SET",
            self.key.as_bytes(),
            value.as_bytes(),
            b"PX",
            ttl_ms.as_bytes(),
        ])? {
            Reply::Error(e) => Err(Error::Network(format!("Redis SET failed: {e}"))),
            _ => Ok(entry),
        }
    }

    fn try_lock(&self, conn: &mut Conn, value: &str) -> Result<bool> {
        let ms = LOCK_MS.to_string();
        Ok(matches!(
            conn.cmd(&[
                b"SET",
                self.lock_key.as_bytes(),
                value.as_bytes(),
                b"NX",
                b"PX",
                ms.as_bytes(),
            ])?,
            Reply::Simple(_)
        ))
    }

    fn unlock(&self, conn: &mut Conn, value: &str) {
        let _ = conn.cmd(&[
            b"EVAL",
            UNLOCK_SCRIPT.as_bytes(),
            b"1",
            self.lock_key.as_bytes(),
            value.as_bytes(),
        ]);
    }

    /// A valid token for every process: the shared one, unless it is
    /// missing, expired or `rejected`; then exactly one process (the one
    /// that takes the lock) fetches and the others wait for its result.
    /// Past `refresh_at`, one process renews while the others go on.
    pub fn obtain(&self, rejected: Option<&str>, fetch: &mut Fetch) -> Result<Entry> {
        let mut conn = Conn::open(&self.url)?;
        let deadline = std::time::Instant::now() + WAIT_FOR_OTHERS;
        let me = lock_value();
        loop {
            let now = now_secs();
            let current = self.read(&mut conn)?;
            if let Some(e) = &current {
                let usable = Some(e.token.as_str()) != rejected && now < e.expires_at;
                if usable && now < e.refresh_at {
                    return Ok(e.clone());
                }
                if usable {
                    // Refresh ahead: one process renews, the rest use this one.
                    if !self.try_lock(&mut conn, &me)? {
                        return Ok(e.clone());
                    }
                    let result = self.fetch_and_store(&mut conn, false, fetch);
                    self.unlock(&mut conn, &me);
                    return result.or_else(|_| Ok(e.clone()));
                }
            }
            if self.try_lock(&mut conn, &me)? {
                // Someone may have stored a new token just before we locked.
                let result = match self.read(&mut conn)? {
                    Some(e) if Some(e.token.as_str()) != rejected && now_secs() < e.expires_at => {
                        Ok(e)
                    }
                    _ => self.fetch_and_store(&mut conn, rejected.is_some(), fetch),
                };
                self.unlock(&mut conn, &me);
                return result;
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Timeout(
                    "waited too long for another process to fetch the access_token".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
            // The transfer that waits can still be cancelled or stopped.
            if crate::cancel::cancelled_here() {
                return Err(Error::Cancelled);
            }
            crate::cancel::heartbeat()?;
        }
    }

    fn fetch_and_store(&self, conn: &mut Conn, force: bool, fetch: &mut Fetch) -> Result<Entry> {
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
        assert_eq!(
            (u.addr.as_str(), u.db, u.password),
            ("127.0.0.1:6380", 2, None)
        );
        let u = parse_url("redis://:pw@localhost").expect("url");
        assert_eq!(
            (u.addr.as_str(), u.password.as_deref()),
            ("localhost:6379", Some("pw"))
        );
        let u = parse_url("redis://user:pw@h:1/").expect("url");
        assert_eq!(u.username.as_deref(), Some("user"));
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("redis://").is_err());
        assert!(parse_url("redis://h/x").is_err());
    }

    #[test]
    fn replies() {
        let mut r = std::io::Cursor::new(
            b"+OK\r\n$3\r\nabc\r\n$-1\r\n:7\r\n-ERR x\r\n*2\r\n:1\r\n$1\r\nz\r\n".to_vec(),
        );
        assert_eq!(read_reply(&mut r, 0).ok(), Some(Reply::Simple("OK".into())));
        assert_eq!(
            read_reply(&mut r, 0).ok(),
            Some(Reply::Bulk(Some(b"abc".to_vec())))
        );
        assert_eq!(read_reply(&mut r, 0).ok(), Some(Reply::Bulk(None)));
        assert_eq!(read_reply(&mut r, 0).ok(), Some(Reply::Int(7)));
        assert_eq!(
            read_reply(&mut r, 0).ok(),
            Some(Reply::Error("ERR x".into()))
        );
        assert_eq!(
            read_reply(&mut r, 0).ok(),
            Some(Reply::Array(Some(vec![
                Reply::Int(1),
                Reply::Bulk(Some(b"z".to_vec()))
            ])))
        );
        for bad in [&b"?x\r\n"[..], b"$99999999\r\n", b"+no-crlf", b"*-x\r\n"] {
            assert!(read_reply(&mut std::io::Cursor::new(bad.to_vec()), 0).is_err());
        }
    }
}
