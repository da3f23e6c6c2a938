//! Platforms, their defaults and per-type upload limits, and the client
//! configuration a host builds before creating a client.

use crate::auth::{check_token, ProviderFn, TokenApi};
use crate::error::{Error, Result};
use crate::event::Events;
use crate::range::{valid_chunk_size, MAX_CHUNK};
use std::collections::BTreeMap;
use std::time::Duration;

/// WeCom (企业微信): qyapi.weixin.qq.com, token from `cgi-bin/gettoken`.
pub const WXM_PLATFORM_WECOM: i32 = 1;
/// WeChat Customer Service (微信客服): the same host, endpoints and token source as WeCom.
pub const WXM_PLATFORM_KF: i32 = 2;
/// Official Account (公众号): api.weixin.qq.com, token from `cgi-bin/stable_token`.
pub const WXM_PLATFORM_OFFICIAL: i32 = 3;
/// Mini Program customer-service media: api.weixin.qq.com, images only.
pub const WXM_PLATFORM_MINIPROGRAM: i32 = 4;

/// Token endpoint: the platform's default (`gettoken` for WeCom and kf, `stable_token` otherwise).
pub const WXM_TOKEN_API_DEFAULT: i32 = 0;
/// Official Account / Mini Program: `cgi-bin/stable_token` (POST, JSON).
pub const WXM_TOKEN_API_STABLE: i32 = 1;
/// Official Account / Mini Program: the classic `cgi-bin/token` (GET). Fetching a
/// new token there invalidates the previous one after 5 minutes, for every process.
pub const WXM_TOKEN_API_CLASSIC: i32 = 2;

const MIB: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    WeCom,
    Kf,
    Official,
    MiniProgram,
}

impl Platform {
    pub fn from_code(code: i32) -> Option<Platform> {
        match code {
            WXM_PLATFORM_WECOM => Some(Platform::WeCom),
            WXM_PLATFORM_KF => Some(Platform::Kf),
            WXM_PLATFORM_OFFICIAL => Some(Platform::Official),
            WXM_PLATFORM_MINIPROGRAM => Some(Platform::MiniProgram),
            _ => None,
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Platform::WeCom | Platform::Kf => "https://qyapi.weixin.qq.com",
            Platform::Official | Platform::MiniProgram => "https://api.weixin.qq.com",
        }
    }

    /// WeCom and kf take `corpid`/`corpsecret` at `gettoken`; the others
    /// `appid`/`secret` at `stable_token`.
    pub fn is_wecom_family(self) -> bool {
        matches!(self, Platform::WeCom | Platform::Kf)
    }

    /// The upload types this platform accepts, with their default size limit
    /// and the formats (by extension) it takes. From docs/WECHAT-API.md; a host
    /// overrides the limits with `wxm_config_set_limit`.
    pub fn upload_rule(self, kind: &str) -> Option<UploadRule> {
        use Format::*;
        let r = |limit: u64, formats: &'static [Format], too_large: i32| UploadRule {
            limit,
            formats,
            too_large,
        };
        match (self, kind) {
            (Platform::WeCom, "image") => Some(r(10 * MIB, &[Jpg, Png], 40009)),
            (Platform::Kf, "image") => Some(r(2 * MIB, &[Jpg, Png], 40009)),
            (Platform::WeCom | Platform::Kf, "voice") => Some(r(2 * MIB, &[Amr], 40010)),
            (Platform::WeCom | Platform::Kf, "video") => Some(r(10 * MIB, &[Mp4], 40011)),
            (Platform::WeCom | Platform::Kf, "file") => Some(r(20 * MIB, &[], 40006)),
            (Platform::Official | Platform::MiniProgram, "image") => {
                Some(r(10 * MIB, &[Jpg, Png, Gif], 40009))
            }
            (Platform::Official, "voice") => Some(r(2 * MIB, &[Amr, Mp3], 40010)),
            (Platform::Official, "video") => Some(r(10 * MIB, &[Mp4], 40011)),
            (Platform::Official, "thumb") => Some(r(64 * 1024, &[Jpg], 40012)),
            // cgi-bin/media/uploadimg: a permanent image URL, not a media_id.
            (Platform::WeCom | Platform::Kf, "uploadimg") => Some(r(2 * MIB, &[Jpg, Png], 40009)),
            (Platform::Official, "uploadimg") => Some(r(MIB, &[Jpg, Png], 40009)),
            _ => None,
        }
    }
}

/// Media formats recognised by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpg,
    Png,
    Gif,
    Amr,
    Mp3,
    Mp4,
}

impl Format {
    pub fn sniff(head: &[u8]) -> Option<Format> {
        if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpg)
        } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
            Some(Format::Gif)
        } else if head.starts_with(b"#!AMR") {
            Some(Format::Amr)
        } else if head.starts_with(b"ID3")
            || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0)
        {
            Some(Format::Mp3)
        } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
            Some(Format::Mp4)
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpg => "jpg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Amr => "amr",
            Format::Mp3 => "mp3",
            Format::Mp4 => "mp4",
        }
    }

    /// Extensions that name this format (lowercase).
    pub fn matches_extension(self, ext: &str) -> bool {
        match self {
            Format::Jpg => ext == "jpg" || ext == "jpeg",
            other => ext == other.extension(),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Amr => "audio/amr",
            Format::Mp3 => "audio/mpeg",
            Format::Mp4 => "video/mp4",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct UploadRule {
    pub limit: u64,
    /// Empty: any format (type `file`).
    pub formats: &'static [Format],
    /// The errcode WeChat answers when the file is over the limit.
    pub too_large: i32,
}

/// Everything a client is built from. The fields are private to the crate
/// and set only through the validating setters, so a built client never
/// holds an invalid value.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) platform: Platform,
    pub(crate) base_url: String,
    pub(crate) access_token: Option<String>,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) chunk_size: u64,
    pub(crate) parallelism: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) io_timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Duration,
    pub(crate) limits: BTreeMap<String, u64>,
    pub(crate) ca_file: Option<String>,
    pub(crate) token_api: TokenApi,
    pub(crate) token_provider: Option<ProviderFn>,
    /// `redis://…`: share one token per app between processes.
    pub(crate) token_store: Option<String>,
    /// Bounds of the token store's connect (TCP, TLS, AUTH) and of each command.
    pub(crate) token_store_connect_timeout: Duration,
    pub(crate) token_store_command_timeout: Duration,
    /// Whether a failing token store lets the client fetch tokens alone.
    pub(crate) token_store_fallback: bool,
    /// The host's event handler (none by default: nothing is built).
    pub(crate) events: Events,
}

impl Config {
    pub fn new(platform: Platform) -> Config {
        Config {
            platform,
            base_url: platform.default_base_url().to_string(),
            access_token: None,
            credentials: None,
            chunk_size: MAX_CHUNK,
            parallelism: 1,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            max_attempts: 4,
            backoff: Duration::from_millis(200),
            limits: BTreeMap::new(),
            ca_file: None,
            token_api: if platform.is_wecom_family() {
                TokenApi::GetToken
            } else {
                TokenApi::Stable
            },
            token_provider: None,
            token_store: None,
            token_store_connect_timeout: Duration::from_secs(5),
            token_store_command_timeout: Duration::from_secs(5),
            token_store_fallback: false,
            events: Events::default(),
        }
    }

    pub fn set_token_api(&mut self, api: i32) -> Result<()> {
        let wecom = self.platform.is_wecom_family();
        self.token_api = match (api, wecom) {
            (WXM_TOKEN_API_DEFAULT, true) => TokenApi::GetToken,
            (WXM_TOKEN_API_DEFAULT | WXM_TOKEN_API_STABLE, false) => TokenApi::Stable,
            (WXM_TOKEN_API_CLASSIC, false) => TokenApi::Classic,
            _ => {
                return Err(Error::InvalidArg(format!(
                    "token API {api} does not exist for this platform (WeCom and kf only have gettoken)"
                )))
            }
        };
        Ok(())
    }

    pub fn set_base_url(&mut self, url: &str) -> Result<()> {
        let url = url.trim_end_matches('/');
        let bad = |why: &str| Err(Error::InvalidArg(format!("base_url {why}")));
        let Some(rest) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        else {
            return bad("must start with http:// or https://");
        };
        if url.contains(|c: char| matches!(c, '?' | '#') || c.is_whitespace() || c.is_control()) {
            return bad("must not hold a query, fragment, space or control character");
        }
        let authority = rest.split('/').next().unwrap_or("");
        if !valid_authority(authority) {
            return bad("needs a host, [IPv6] address or host:port (and no user:password@)");
        }
        self.base_url = url.to_string();
        Ok(())
    }

    pub fn set_chunk_size(&mut self, bytes: u64) -> Result<()> {
        if !valid_chunk_size(bytes) {
            return Err(Error::InvalidArg(format!(
                "chunk size {bytes} must be a non-zero multiple of 16 and at most {MAX_CHUNK} (20 MiB)"
            )));
        }
        self.chunk_size = bytes;
        Ok(())
    }

    pub fn set_parallelism(&mut self, n: u32) -> Result<()> {
        if n == 0 || n > 64 {
            return Err(Error::InvalidArg(format!(
                "parallelism {n} must be between 1 and 64"
            )));
        }
        self.parallelism = n;
        Ok(())
    }

    pub fn set_timeouts(&mut self, connect_ms: u32, io_ms: u32) -> Result<()> {
        if connect_ms == 0 || io_ms == 0 {
            return Err(Error::InvalidArg("timeouts must be at least 1 ms".into()));
        }
        self.connect_timeout = Duration::from_millis(connect_ms.into());
        self.io_timeout = Duration::from_millis(io_ms.into());
        Ok(())
    }

    pub fn set_token_store_timeouts(&mut self, connect_ms: u32, command_ms: u32) -> Result<()> {
        for ms in [connect_ms, command_ms] {
            if ms == 0 || ms > 600_000 {
                return Err(Error::InvalidArg(format!(
                    "token store timeout {ms} ms must be between 1 and 600000"
                )));
            }
        }
        self.token_store_connect_timeout = Duration::from_millis(connect_ms.into());
        self.token_store_command_timeout = Duration::from_millis(command_ms.into());
        Ok(())
    }

    pub fn set_retries(&mut self, max_attempts: u32, backoff_ms: u32) -> Result<()> {
        if max_attempts == 0 || max_attempts > 100 {
            return Err(Error::InvalidArg(format!(
                "max_attempts {max_attempts} must be between 1 and 100"
            )));
        }
        if backoff_ms > 600_000 {
            return Err(Error::InvalidArg(
                "backoff must be at most 600000 ms".into(),
            ));
        }
        self.max_attempts = max_attempts;
        self.backoff = Duration::from_millis(backoff_ms.into());
        Ok(())
    }

    pub fn set_limit(&mut self, kind: &str, bytes: u64) -> Result<()> {
        if self.platform.upload_rule(kind).is_none() {
            return Err(Error::InvalidArg(format!(
                "this platform has no upload type {kind:?}"
            )));
        }
        self.limits.insert(kind.to_string(), bytes);
        Ok(())
    }

    pub fn set_token(&mut self, token: &str) -> Result<()> {
        check_token(token)?;
        self.access_token = Some(token.to_string());
        Ok(())
    }

    pub fn set_credentials(&mut self, id: &str, secret: &str) -> Result<()> {
        if id.is_empty() || secret.is_empty() {
            return Err(Error::InvalidArg("id and secret must not be empty".into()));
        }
        self.credentials = Some((id.to_string(), secret.to_string()));
        Ok(())
    }

    /// Shares one token per app between processes through the Redis store
    /// at `url` (`redis://` or `rediss://`).
    pub fn set_token_store(&mut self, url: &str) -> Result<()> {
        crate::redis::parse_url(url)?;
        self.token_store = Some(url.to_string());
        Ok(())
    }

    /// Whether a failing token store lets this client fetch tokens alone.
    pub fn set_token_store_fallback(&mut self, allow_local_fetch: bool) {
        self.token_store_fallback = allow_local_fetch;
    }

    /// A PEM file of CAs for https (and for a `rediss://` store).
    pub fn set_ca_file(&mut self, path: &str) -> Result<()> {
        if path.is_empty() {
            return Err(Error::InvalidArg("the CA file path is empty".into()));
        }
        self.ca_file = Some(path.to_string());
        Ok(())
    }

    /// The host's token provider (None: none).
    pub fn set_token_provider(&mut self, provider: Option<ProviderFn>) {
        self.token_provider = provider;
    }

    /// The host's event handler, for events of `min_level` and above
    /// (`Events::default()`: none).
    pub fn set_events(&mut self, events: Events) {
        self.events = events;
    }

    /// Whether a token or a way to get one (credentials, a provider) is set.
    pub fn has_token_source(&self) -> bool {
        self.access_token.is_some() || self.credentials.is_some() || self.token_provider.is_some()
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The effective rule for an upload type, with any host override applied.
    pub fn upload_rule(&self, kind: &str) -> Option<UploadRule> {
        let mut rule = self.platform.upload_rule(kind)?;
        if let Some(limit) = self.limits.get(kind) {
            rule.limit = *limit;
        }
        Some(rule)
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, with a port of 1 to 65535.
fn valid_authority(a: &str) -> bool {
    let valid_port = |p: &str| p.parse::<u16>().is_ok_and(|n| n > 0);
    if let Some(v6) = a.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        let addr_ok = !addr.is_empty()
            && addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        return addr_ok && (after.is_empty() || after.strip_prefix(':').is_some_and(valid_port));
    }
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (a, None),
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && port.is_none_or(valid_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(Format::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpg));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\nxxxx"), Some(Format::Png));
        assert_eq!(Format::sniff(b"#!AMR\n"), Some(Format::Amr));
        assert_eq!(Format::sniff(b"\0\0\0\x18ftypmp42"), Some(Format::Mp4));
        assert_eq!(Format::sniff(b"hello world"), None);
    }

    #[test]
    fn setters_validate() {
        let mut c = Config::new(Platform::WeCom);
        assert!(c.set_chunk_size(1000).is_err());
        assert!(c.set_chunk_size(MAX_CHUNK + 16).is_err());
        assert!(c.set_chunk_size(0).is_err());
        assert!(c.set_chunk_size(64 * 1024).is_ok());
        assert!(c.set_parallelism(0).is_err());
        assert!(c.set_base_url("ftp://x").is_err());
        assert!(c.set_base_url("http://127.0.0.1:1/").is_ok());
        for bad in [
            "http://[::1",
            "http://",
            "https:///x",
            "http://a b",
            "http://h:0",
            "http://h:99999",
            "http://u:p@h",
            "http://h:x",
            "http://h\n",
        ] {
            assert!(c.set_base_url(bad).is_err(), "{bad}");
        }
        for good in [
            "http://[::1]:8080",
            "https://qyapi.weixin.qq.com",
            "http://h/prefix",
            "http://my_host:80",
        ] {
            assert!(c.set_base_url(good).is_ok(), "{good}");
        }
        assert!(c.set_base_url("http://127.0.0.1:1/").is_ok());
        assert_eq!(c.base_url, "http://127.0.0.1:1");
        assert!(c.set_token("a b").is_err());
        assert!(c.set_limit("thumb", 1).is_err());
        assert!(c.set_limit("file", 1 << 30).is_ok());
        assert_eq!(c.upload_rule("file").map(|r| r.limit), Some(1 << 30));
        assert!(Platform::MiniProgram.upload_rule("voice").is_none());
        assert!(c.set_token_store_timeouts(0, 1).is_err());
        assert!(c.set_token_store_timeouts(1, 600_001).is_err());
        assert!(c.set_token_store_timeouts(250, 1000).is_ok());
        assert_eq!(c.token_store_command_timeout, Duration::from_millis(1000));
    }
}
