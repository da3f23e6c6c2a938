//! A WeChat / WeCom temporary-media (临时素材) API emulator.
//!
//! A real HTTP/1.1 server (hyper 1 on tokio) that answers `cgi-bin/gettoken`,
//! `cgi-bin/token`, `cgi-bin/stable_token`, `cgi-bin/media/upload`,
//! `cgi-bin/media/get`, `cgi-bin/media/get/jssdk`, `/__video/{id}`, the async
//! upload (`cgi-bin/media/upload_by_url`, `cgi-bin/media/get_upload_by_url_result`)
//! and `cgi-bin/media/uploadimg` (+ `/__img/{id}`) the way WeChat does, plus an admin API (`/__admin/...`) that tests use to register
//! media, script faults and read statistics. `docs/CONTRACT.md` is the spec.
//!
//! ```no_run
//! use wxmedia_emulator::{Emulator, Options, Platform};
//! let emu = Emulator::start(Options { platform: Platform::Official, ..Default::default() }).unwrap();
//! println!("{}", emu.base_url()); // http://127.0.0.1:PORT
//! // dropping `emu` stops the server
//! ```

mod admin;
mod asyncup;
mod body;
mod md5;
mod server;
mod state;
mod util;
mod wechat;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use md5::md5_hex;
pub use util::{fill_generated, splitmix64};

/// Which WeChat product the emulator plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Platform {
    /// WeCom (企业微信): token by `cgi-bin/gettoken`, `created_at` a string.
    #[default]
    WeCom,
    /// WeChat Customer Service (微信客服): behaves as WeCom.
    Kf,
    /// Official Account (公众号): `created_at` a number, errors as text/plain, video_url.
    Official,
    /// Mini Program customer service: as Official Account, images only.
    MiniProgram,
}

impl Platform {
    /// The name used on the command line: `wecom`, `kf`, `official`, `miniprogram`.
    pub fn name(self) -> &'static str {
        match self {
            Platform::WeCom => "wecom",
            Platform::Kf => "kf",
            Platform::Official => "official",
            Platform::MiniProgram => "miniprogram",
        }
    }

    /// True for WeCom and kf (qyapi.weixin.qq.com behaviour).
    pub fn is_wecom_like(self) -> bool {
        matches!(self, Platform::WeCom | Platform::Kf)
    }
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "wecom" | "1" => Ok(Platform::WeCom),
            "kf" | "2" => Ok(Platform::Kf),
            "official" | "oa" | "3" => Ok(Platform::Official),
            "miniprogram" | "mp" | "4" => Ok(Platform::MiniProgram),
            other => Err(format!(
                "unknown platform {other:?} (wecom|kf|official|miniprogram)"
            )),
        }
    }
}

/// How to start an emulator. `Options::default()` is WeCom on 127.0.0.1:0.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    pub platform: Platform,
    /// Lifetime of tokens issued by the token endpoints.
    pub token_ttl: Duration,
    /// corpid (WeCom/kf) or appid (Official Account/Mini Program).
    pub corpid: String,
    /// corpsecret / appsecret.
    pub secret: String,
    /// Static access tokens, valid until expired through the admin API.
    pub access_tokens: Vec<String>,
    /// Every regular file in this directory becomes a media (id = filename = file name).
    pub media_dir: Option<PathBuf>,
    /// Also write uploads into `media_dir`.
    pub store_uploads: bool,
    /// Upload limit overrides, by type (`image`, `voice`, `video`, `file`, `thumb`,
    /// and `upload_by_url`, `uploadimg`), in bytes.
    pub limits: HashMap<String, u64>,
    /// Minimum real time an async-upload (`upload_by_url`) job takes before it
    /// completes, so a client polling at once sees status 1 (default 300 ms).
    pub job_delay: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            platform: Platform::WeCom,
            token_ttl: Duration::from_secs(7200),
            corpid: "wxm-corp".to_string(),
            secret: "wxm-secret".to_string(),
            access_tokens: Vec::new(),
            media_dir: None,
            store_uploads: false,
            limits: HashMap::new(),
            job_delay: Duration::from_millis(300),
        }
    }
}

/// A running emulator. Dropping it stops the server and removes its temp files.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<state::Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Emulator {
    /// Binds `opts.listen` and serves on a runtime of its own (2 worker threads).
    pub fn start(opts: Options) -> std::io::Result<Emulator> {
        let listener = std::net::TcpListener::bind(opts.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(state::Shared::new(&opts, addr)?);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        let sh = shared.clone();
        // The runtime is built, run and dropped on its own thread, so starting
        // or dropping an Emulator from inside another runtime (#[tokio::test]) is fine.
        let thread = std::thread::Builder::new()
            .name("wxmedia-emulator-main".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("wxmedia-emulator")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let listener = {
                    let _guard = rt.enter();
                    tokio::net::TcpListener::from_std(listener)
                };
                match listener {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        rt.block_on(server::serve(l, sh, rx));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
                // Open keep-alive connections are simply dropped.
                rt.shutdown_timeout(Duration::from_millis(200));
            })?;
        let started = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("emulator thread died")));
        if let Err(e) = started {
            let _ = thread.join();
            shared.cleanup();
            return Err(e);
        }
        Ok(Emulator {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address (127.0.0.1:PORT).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, to give a client as its base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The private directory uploads are kept in, removed on drop (with
    /// `--store-uploads` they go to the media dir instead, and stay).
    pub fn upload_dir(&self) -> &std::path::Path {
        &self.shared.upload_dir
    }

    /// The platform being emulated.
    pub fn platform(&self) -> Platform {
        self.shared.platform
    }

    /// `POST /__admin/{path}` with a JSON body (e.g. `"media"`, `"faults"`,
    /// `"clock"`), through the real server. A non-200 answer is an error.
    pub fn admin_post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> std::io::Result<serde_json::Value> {
        admin_request(self.addr, "POST", path, Some(body))
    }

    /// `GET /__admin/{path}` (e.g. `"stats"`, `"media/ID"`).
    pub fn admin_get(&self, path: &str) -> std::io::Result<serde_json::Value> {
        admin_request(self.addr, "GET", path, None)
    }
}

/// A minimal blocking HTTP/1.1 request to the admin API (Connection: close).
fn admin_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> std::io::Result<serde_json::Value> {
    use std::io::{Error, ErrorKind, Read, Write};
    let path = path.trim_start_matches('/');
    let path = path.strip_prefix("__admin/").unwrap_or(path);
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        s,
        "{method} /__admin/{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no HTTP head in admin answer"))?;
    let head = String::from_utf8_lossy(&resp[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    let text = &resp[split + 4..];
    if status != "200" {
        return Err(Error::other(format!(
            "admin {method} {path}: HTTP {status}: {}",
            String::from_utf8_lossy(text)
        )));
    }
    serde_json::from_slice(text).map_err(|e| Error::new(ErrorKind::InvalidData, e))
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.cleanup();
    }
}
