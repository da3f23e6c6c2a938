//! `wxmedia`: WeChat temporary media from the command line.
//!
//! Exit status: 0 on success, 2 for a usage error, 1 for any other failure,
//! with `wxmedia: errcode N: message` on stderr (N is WeChat's errcode or a
//! WXM_E_* code, as the C ABI returns it).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxmedia::download::{DownloadOptions, Endpoint, MediaInfo, Sink};
use wxmedia::upload::UploadSource;
use wxmedia::url_upload::UrlUpload;
use wxmedia::{Client, Config, Error, Platform};

const USAGE: &str = "usage:
  wxmedia [OPTIONS] get MEDIA_ID [-o FILE|-] [--hd-voice]
  wxmedia [OPTIONS] upload TYPE FILE [--filename NAME]
  wxmedia [OPTIONS] upload-by-url TYPE URL --filename NAME (--md5 HEX | --local FILE) [--timeout SECS]
  wxmedia [OPTIONS] upload-by-url --jobid JOBID [--timeout SECS]

options (environment variable in brackets):
  --platform wecom|kf|official|miniprogram   [WXMEDIA_PLATFORM, default wecom]
  --base-url URL                             [WXMEDIA_BASE_URL, default the platform's API host]
  --token TOKEN                              [WXMEDIA_ACCESS_TOKEN]
  --id CORPID_OR_APPID --secret SECRET       [WXMEDIA_ID, WXMEDIA_SECRET]
  --redis redis://HOST:PORT                  [WXMEDIA_REDIS] share the token between processes
  --chunk-size BYTES  --parallel N
  --quiet                                    no progress bar, no \"saved\" line: only errors

get writes to FILE atomically (resumable: run it again after a failure),
or to standard output with -o -; without -o it saves under the server's
filename in the current directory.";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(args) {
        Ok(()) => {}
        Err(Failure::Usage(msg)) => {
            eprintln!("wxmedia: {msg}\n\n{USAGE}");
            std::process::exit(2);
        }
        Err(Failure::Api(e)) => {
            eprintln!("wxmedia: errcode {}: {}", e.code(), e);
            std::process::exit(1);
        }
    }
}

enum Failure {
    Usage(String),
    Api(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Api(e)
    }
}

struct Args {
    rest: Vec<String>,
}

impl Args {
    /// Takes `--name VALUE` (or `--name=VALUE`) out of the arguments.
    fn take(&mut self, name: &str) -> Result<Option<String>, Failure> {
        let eq = format!("{name}=");
        if let Some(i) = self.rest.iter().position(|a| a == name) {
            if i + 1 >= self.rest.len() {
                return Err(Failure::Usage(format!("{name} needs a value")));
            }
            let v = self.rest.remove(i + 1);
            self.rest.remove(i);
            return Ok(Some(v));
        }
        if let Some(i) = self.rest.iter().position(|a| a.starts_with(&eq)) {
            let v = self.rest.remove(i)[eq.len()..].to_string();
            return Ok(Some(v));
        }
        Ok(None)
    }

    fn flag(&mut self, name: &str) -> bool {
        match self.rest.iter().position(|a| a == name) {
            Some(i) => {
                self.rest.remove(i);
                true
            }
            None => false,
        }
    }
}

fn env_or(a: &mut Args, flag: &str, var: &str) -> Result<Option<String>, Failure> {
    Ok(a.take(flag)?
        .or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty())))
}

fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// A one-line progress bar on stderr, when stderr is a terminal.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            enabled: !quiet && is_tty(2),
            started: Instant::now(),
            last: Instant::now() - Duration::from_secs(1),
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        if !self.enabled || (self.last.elapsed() < Duration::from_millis(100) && done < total) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs / 1e6;
        let line = if total > 0 {
            let pct = done as f64 * 100.0 / total as f64;
            let filled = (pct / 100.0 * 30.0) as usize;
            format!(
                "\r[{}{}] {pct:5.1}% {done}/{total} bytes {rate:.1} MB/s",
                "#".repeat(filled.min(30)),
                " ".repeat(30 - filled.min(30))
            )
        } else {
            format!("\r{done} bytes {rate:.1} MB/s")
        };
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

fn client(a: &mut Args) -> Result<(Client, bool), Failure> {
    let platform = match env_or(a, "--platform", "WXMEDIA_PLATFORM")?.as_deref() {
        None | Some("wecom") => Platform::WeCom,
        Some("kf") => Platform::Kf,
        Some("official") => Platform::Official,
        Some("miniprogram") => Platform::MiniProgram,
        Some(other) => return Err(Failure::Usage(format!("unknown platform {other:?}"))),
    };
    let mut cfg = Config::new(platform);
    if let Some(url) = env_or(a, "--base-url", "WXMEDIA_BASE_URL")? {
        cfg.set_base_url(&url)?;
    }
    if let Some(t) = env_or(a, "--token", "WXMEDIA_ACCESS_TOKEN")? {
        cfg.set_token(&t)?;
    }
    let id = env_or(a, "--id", "WXMEDIA_ID")?;
    let secret = env_or(a, "--secret", "WXMEDIA_SECRET")?;
    match (id, secret) {
        (Some(id), Some(secret)) => cfg.set_credentials(&id, &secret)?,
        (None, None) => {}
        _ => return Err(Failure::Usage("--id and --secret go together".into())),
    }
    if let Some(r) = env_or(a, "--redis", "WXMEDIA_REDIS")? {
        wxmedia::redis::parse_url(&r)?;
        cfg.token_store = Some(r);
    }
    if let Some(c) = a.take("--chunk-size")? {
        let n = c
            .parse()
            .map_err(|_| Failure::Usage("--chunk-size takes a number of bytes".into()))?;
        cfg.set_chunk_size(n)?;
    }
    if let Some(p) = a.take("--parallel")? {
        let n = p
            .parse()
            .map_err(|_| Failure::Usage("--parallel takes a number".into()))?;
        cfg.set_parallelism(n)?;
    }
    if cfg.access_token.is_none() && cfg.credentials.is_none() {
        return Err(Failure::Usage(
            "no access token: give --token or --id/--secret (or their environment variables)"
                .into(),
        ));
    }
    let quiet = a.flag("--quiet");
    Ok((Client::new(cfg)?, quiet))
}

fn run(args: Vec<String>) -> Result<(), Failure> {
    if args.iter().any(|a| a == "-h" || a == "--help") || args.is_empty() {
        println!("{USAGE}");
        return Ok(());
    }
    let mut a = Args { rest: args };
    let (client, quiet) = client(&mut a)?;
    let cancel = Arc::new(AtomicBool::new(false));
    let command = if a.rest.is_empty() {
        return Err(Failure::Usage("no command".into()));
    } else {
        a.rest.remove(0)
    };
    match command.as_str() {
        "get" => get(&client, &mut a, quiet, cancel),
        "upload" => upload(&client, &mut a, quiet, cancel),
        "upload-by-url" => upload_by_url(&client, &mut a, cancel),
        other => Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
}

fn no_extra(a: &Args) -> Result<(), Failure> {
    match a.rest.first() {
        Some(x) => Err(Failure::Usage(format!("unexpected argument {x:?}"))),
        None => Ok(()),
    }
}

struct StdoutSink<'a> {
    out: std::io::StdoutLock<'a>,
    progress: Progress,
}

impl Sink for StdoutSink<'_> {
    fn write(&mut self, _offset: u64, data: &[u8]) -> wxmedia::Result<()> {
        self.out
            .write_all(data)
            .map_err(|e| Error::Io(format!("standard output: {e}")))
    }
    fn progress(&mut self, done: u64, total: u64) -> wxmedia::Result<()> {
        self.progress.update(done, total);
        Ok(())
    }
}

fn get(client: &Client, a: &mut Args, quiet: bool, cancel: Arc<AtomicBool>) -> Result<(), Failure> {
    let out = a.take("-o")?.or(a.take("--output")?);
    let endpoint = if a.flag("--hd-voice") {
        Endpoint::Jssdk
    } else {
        Endpoint::Media
    };
    if a.rest.is_empty() {
        return Err(Failure::Usage("get needs a MEDIA_ID".into()));
    }
    let media_id = a.rest.remove(0);
    no_extra(a)?;
    let mut progress = Progress::new(quiet);
    let info: MediaInfo = match out.as_deref() {
        Some("-") => {
            let mut sink = StdoutSink {
                out: std::io::stdout().lock(),
                progress,
            };
            let opts = DownloadOptions {
                media_id: &media_id,
                endpoint,
                start: 0,
                in_order_until: 0,
                cancel,
            };
            let info = client.download(&opts, &mut sink)?;
            sink.progress.finish();
            info
        }
        Some(path) => {
            let info = client.download_to_path(
                &media_id,
                endpoint,
                &PathBuf::from(path),
                cancel,
                &mut |d, t| {
                    progress.update(d, t);
                    Ok(())
                },
            )?;
            progress.finish();
            if !quiet {
                eprintln!("saved {} bytes to {path}", info.size.unwrap_or(0));
            }
            info
        }
        None => {
            // The server's name, known only after the first answer: fetch
            // into a name from the media_id, then rename.
            let tmp = PathBuf::from(format!(
                ".wxmedia-{}",
                wxmedia::range::query_encode(&media_id)
            ));
            let info =
                client.download_to_path(&media_id, endpoint, &tmp, cancel, &mut |d, t| {
                    progress.update(d, t);
                    Ok(())
                })?;
            progress.finish();
            let name = info
                .filename
                .clone()
                .unwrap_or_else(|| format!("{}.bin", wxmedia::range::query_encode(&media_id)));
            std::fs::rename(&tmp, &name).map_err(|e| Error::Io(format!("naming {name}: {e}")))?;
            if !quiet {
                eprintln!("saved {} bytes to {name}", info.size.unwrap_or(0));
            }
            info
        }
    };
    if let Some(url) = &info.video_url {
        eprintln!("video_url: {url}");
    }
    Ok(())
}

fn upload(
    client: &Client,
    a: &mut Args,
    quiet: bool,
    cancel: Arc<AtomicBool>,
) -> Result<(), Failure> {
    let filename = a.take("--filename")?;
    if a.rest.len() != 2 {
        return Err(Failure::Usage("upload needs TYPE and FILE".into()));
    }
    let kind = a.rest.remove(0);
    let path = PathBuf::from(a.rest.remove(0));
    let mut progress = Progress::new(quiet);
    let r = client.upload(
        &kind,
        UploadSource::Path(path),
        filename.as_deref(),
        cancel,
        &mut |d, t| {
            progress.update(d, t);
            Ok(())
        },
    )?;
    progress.finish();
    match &r.url {
        Some(url) => println!("{}", serde_json::json!({"type": r.kind, "url": url})),
        None => println!(
            "{}",
            serde_json::json!({"type": r.kind, "media_id": r.media_id, "created_at": r.created_at})
        ),
    }
    Ok(())
}

fn upload_by_url(client: &Client, a: &mut Args, cancel: Arc<AtomicBool>) -> Result<(), Failure> {
    let timeout = match a.take("--timeout")? {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| Failure::Usage("--timeout takes seconds".into()))?,
        ),
        None => Duration::from_secs(600),
    };
    let jobid = match a.take("--jobid")? {
        Some(j) => j,
        None => {
            let filename = a
                .take("--filename")?
                .ok_or_else(|| Failure::Usage("upload-by-url needs --filename".into()))?;
            let md5 = match (a.take("--md5")?, a.take("--local")?) {
                (Some(m), None) => m,
                (None, Some(local)) => {
                    let (hex, size) = wxmedia::md5::hex_of_file(std::path::Path::new(&local))
                        .map_err(|e| Error::Io(format!("reading {local}: {e}")))?;
                    if !(wxmedia::url_upload::MIN_SIZE..=wxmedia::url_upload::MAX_SIZE)
                        .contains(&size)
                    {
                        return Err(Error::wechat(
                            45001,
                            format!("{local} has {size} bytes; 6 to 200 MB allowed"),
                        )
                        .into());
                    }
                    hex
                }
                _ => return Err(Failure::Usage("give one of --md5 or --local".into())),
            };
            if a.rest.len() != 2 {
                return Err(Failure::Usage("upload-by-url needs TYPE and URL".into()));
            }
            let kind = a.rest.remove(0);
            let url = a.rest.remove(0);
            let req = UrlUpload {
                scene: 1,
                kind,
                filename,
                url,
                md5,
            };
            let jobid = client.upload_by_url_submit(&req, &cancel)?;
            eprintln!("jobid {jobid}: waiting for WeChat to fetch the URL");
            jobid
        }
    };
    no_extra(a)?;
    let (media_id, created_at) = match client.upload_by_url_wait(&jobid, timeout, &cancel)? {
        wxmedia::url_upload::JobStatus::Done {
            media_id,
            created_at,
        } => (media_id, created_at),
        wxmedia::url_upload::JobStatus::Failed { errcode, errmsg } => {
            return Err(Error::wechat(errcode, format!("job {jobid} failed: {errmsg}")).into())
        }
        wxmedia::url_upload::JobStatus::Processing => {
            return Err(Error::Timeout(format!("job {jobid} still processing")).into())
        }
    };
    println!(
        "{}",
        serde_json::json!({"jobid": jobid, "media_id": media_id, "created_at": created_at})
    );
    Ok(())
}
