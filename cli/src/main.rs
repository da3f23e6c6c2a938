//! `wxmedia`: WeChat temporary media from the command line.
//!
//! Arguments are parsed by clap (derive): it gives `--version`, per-command
//! `--help`, `--`, environment fallbacks and shell completions
//! (clap_complete) from one declaration, where a hand parser had none of
//! them. Transfers are the library's own `Client` calls; this file only
//! turns arguments into them and their results into output and exit codes.

use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wxmedia::download::{MediaInfo, Sink};
use wxmedia::event::{CounterValues, Event, Events, Kind, Level};
use wxmedia::objstore::ObjectStore;
use wxmedia::transfer::{ProgressFn, DEFAULT_JOB_WAIT};
use wxmedia::url_upload::UrlUploadRequest;
use wxmedia::{Client, Config, Download, Error, Platform, Upload, UrlUpload};

/// Exit status by class of failure. The README's "Command line" section
/// repeats this table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// WeChat answered an errcode (or the library refused locally with the
    /// errcode WeChat would answer), including a failed upload-by-url job.
    WeChat = 1,
    /// Bad arguments or flags, or no token/credentials configured.
    Usage = 2,
    /// Network: connection, timeout, TLS, an HTTP status WeChat never uses,
    /// a protocol violation, an answer lost after the request was sent.
    Network = 3,
    /// Local files: unreadable input, unwritable output, output exists.
    LocalIo = 4,
    /// The shared token store (`--redis`) failed.
    TokenStore = 5,
    /// A bug in wxmedia (a caught panic, a handle in the wrong state).
    Internal = 70,
    /// Interrupted by Ctrl-C (SIGINT), as shells report 128 + 2.
    Cancelled = 130,
}

impl Class {
    fn of(e: &Error) -> Class {
        match e {
            Error::WeChat { .. } => Class::WeChat,
            // Refused object-store credentials or a missing bucket: the
            // command line (or environment) names the wrong thing.
            Error::InvalidArg(_)
            | Error::NoToken
            | Error::ObjectStoreAuth(_)
            | Error::NoSuchBucket(_) => Class::Usage,
            Error::Network(_)
            | Error::Timeout(_)
            | Error::Tls(_)
            | Error::HttpStatus { .. }
            | Error::Protocol(_)
            | Error::OutcomeUnknown(_)
            | Error::ObjectStore { .. } => Class::Network,
            // Our callbacks stop a transfer only when stdout or a file fails.
            Error::Io(_) | Error::Aborted(_) => Class::LocalIo,
            Error::TokenStore(_) => Class::TokenStore,
            Error::Cancelled => Class::Cancelled,
            Error::Panic(_) | Error::State(_) => Class::Internal,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Class::WeChat => "wechat",
            Class::Usage => "usage",
            Class::Network => "network",
            Class::LocalIo => "local_io",
            Class::TokenStore => "token_store",
            Class::Internal => "internal",
            Class::Cancelled => "cancelled",
        }
    }
}

const AFTER_HELP: &str = "\
Sizes take a K, M or G suffix (powers of 1024): 512K, 20M, 1G.
A media_id that starts with '-' goes after '--':  wxmedia get -o a.bin -- -abc

Exit status:
    0    success
    1    WeChat errcode (the server's, or the one WeChat would answer), a failed job
    2    usage: bad arguments, no token or credentials, object-store credentials
         refused (-1016) or no such bucket (-1017)
    3    network: connection, timeout, TLS, unexpected HTTP status, protocol,
         another object-store failure (-1015)
    4    local I/O: a file cannot be read or written, or the output exists (--force)
    5    token store (--redis) failed
    70   internal error (please report it)
    130  cancelled by Ctrl-C (SIGINT)
On failure stderr has one line `wxmedia: errcode N: message` (N as the C ABI
returns it: WeChat's errcode, or a WXM_E_* code); with --json, stdout has
{\"ok\": false, \"errcode\": N, \"message\": ..., \"class\": ..., \"exit_code\": ...}.
With --json, a transfer's object (success or failure) also has \"counters\":
{\"requests\", \"retries\", \"bytes_received\", \"bytes_sent\", \"token_refreshes\",
\"resumed_from\", \"elapsed_us\"}.
-v prints on stderr, one line each: retries, token fetches, refreshes and
shares, resumes and failed resume checks, fallbacks; -vv also every request
(method, endpoint, range, status, bytes, duration). Never a token or secret.";

#[derive(Parser)]
#[command(
    name = "wxmedia",
    version,
    about = "WeChat / WeCom temporary media (临时素材): get, upload, upload-by-url",
    after_help = AFTER_HELP,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes, before or after the command's name.
#[derive(Args)]
#[command(next_help_heading = "Global options")]
struct Global {
    /// Which API: wecom (企业微信), kf (微信客服), official (公众号), miniprogram (小程序)
    #[arg(long, global = true, env = "WXMEDIA_PLATFORM", value_enum, default_value_t = PlatformArg::Wecom)]
    platform: PlatformArg,
    /// API host, e.g. an emulator's http://127.0.0.1:PORT [default: the platform's]
    #[arg(long, global = true, env = "WXMEDIA_BASE_URL", value_name = "URL")]
    base_url: Option<String>,
    /// A static access_token
    #[arg(
        long,
        global = true,
        env = "WXMEDIA_ACCESS_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// corpid or appid, to fetch tokens with --secret [env WXMEDIA_CORPID, WXMEDIA_APPID also read]
    #[arg(
        long,
        global = true,
        env = "WXMEDIA_ID",
        visible_aliases = ["corpid", "appid"],
        value_name = "CORPID_OR_APPID"
    )]
    id: Option<String>,
    /// corpsecret or appsecret (the environment keeps it out of `ps`)
    #[arg(long, global = true, env = "WXMEDIA_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Share the token between processes through Redis (redis://[:PASSWORD@]HOST:PORT[/DB])
    #[arg(
        long,
        global = true,
        env = "WXMEDIA_REDIS",
        hide_env_values = true,
        value_name = "URL"
    )]
    redis: Option<String>,
    /// Bytes per Range request: a multiple of 16, at most 20M [default: 20M]
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    chunk_size: Option<u64>,
    /// Connections per download, 1 to 64 [default: 1]
    #[arg(long, global = true, visible_alias = "parallelism", value_name = "N")]
    parallel: Option<u32>,
    /// No progress bar and no "saved" line: only errors
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Print one JSON object on stdout, on success and on failure, with the transfer's counters
    #[arg(long, global = true)]
    json: bool,
    /// -v: retries, token fetches and refreshes, resumes and fallbacks on stderr; -vv: also every request
    #[arg(long, short, global = true, action = ArgAction::Count)]
    verbose: u8,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlatformArg {
    Wecom,
    Kf,
    Official,
    Miniprogram,
}

#[derive(Subcommand)]
enum Command {
    /// Download a media: to FILE atomically (resumable: run it again after a
    /// failure), to stdout with `-o -`, straight into S3-compatible object
    /// storage with `-o s3://BUCKET/KEY`, or without -o under the server's
    /// filename in the current directory.
    #[command(after_help = S3_HELP)]
    Get {
        /// The media_id (after `--` when it starts with '-')
        #[arg(value_name = "MEDIA_ID")]
        media_id: String,
        /// Output file, - for standard output, or s3://BUCKET/KEY
        #[arg(short, long, value_name = "FILE")]
        output: Option<String>,
        /// Replace an existing output file
        #[arg(long)]
        force: bool,
        /// HD voice (Official Account speex, media/get/jssdk)
        #[arg(long)]
        hd_voice: bool,
        /// Start at this byte offset (with -o -; a file resumes by itself)
        #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "output")]
        start: Option<u64>,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Upload FILE as TYPE (image, voice, video, file, thumb; uploadimg for a
    /// permanent image URL) and print {"type", "media_id", "created_at"}.
    Upload {
        /// image, voice, video, file, thumb or uploadimg
        #[arg(value_name = "TYPE")]
        kind: String,
        /// The file to upload, or - for standard input (with --length and --filename)
        file: PathBuf,
        /// The name WeChat shows [default: FILE's name]
        #[arg(long, value_name = "NAME")]
        filename: Option<String>,
        /// Bytes to read from standard input (the multipart body is sized up front)
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        length: Option<u64>,
    },
    /// Have WeChat fetch a URL (WeCom, kf: 6 bytes to 200M, Range support
    /// needed) and wait for the job; print {"jobid", "media_id", "created_at"}.
    UploadByUrl {
        /// video or file
        #[arg(value_name = "TYPE", required_unless_present = "jobid")]
        kind: Option<String>,
        /// An http(s) URL that serves the file with Range support
        #[arg(value_name = "URL", required_unless_present = "jobid")]
        url: Option<String>,
        /// The name WeChat shows [default: the name of --local]
        #[arg(long, value_name = "NAME", conflicts_with = "jobid")]
        filename: Option<String>,
        /// MD5 of the file at URL, in hex
        #[arg(long, value_name = "HEX", conflicts_with_all = ["local", "jobid"])]
        md5: Option<String>,
        /// A local copy of the file at URL, for its MD5 and size
        #[arg(long, value_name = "FILE", conflicts_with = "jobid")]
        local: Option<PathBuf>,
        /// Wait for a job submitted before, instead of submitting one
        #[arg(long, value_name = "JOBID")]
        jobid: Option<String>,
        /// Seconds to wait for the job (it goes on after; wait again with --jobid)
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_JOB_WAIT.as_secs())]
        timeout: u64,
    },
    /// Print a completion script: wxmedia completions bash > /etc/bash_completion.d/wxmedia
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Where `-o s3://BUCKET/KEY` goes. Credentials are read from the
/// environment only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
/// AWS_SESSION_TOKEN): a flag would show the secret in `ps`.
#[derive(Args, Default)]
#[command(next_help_heading = "Object storage (-o s3://BUCKET/KEY)")]
struct S3Args {
    /// S3-compatible endpoint, e.g. http://127.0.0.1:7070 [default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS's]
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// Signing region [default: $AWS_REGION, $AWS_DEFAULT_REGION, else us-east-1]
    #[arg(long, value_name = "REGION")]
    s3_region: Option<String>,
    /// Path-style URLs (ENDPOINT/BUCKET/KEY) [default: with an endpoint; virtual-hosted on AWS]
    #[arg(long)]
    s3_path_style: bool,
    /// After a failure or Ctrl-C, keep the uploaded parts, so that running the command again resumes
    #[arg(long)]
    s3_keep_parts: bool,
    /// Part size: 5M to 512M, a multiple of 16; memory is --parallel x this [default: 8M]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    s3_part_size: Option<u64>,
}

impl S3Args {
    fn any(&self) -> bool {
        self.s3_endpoint.is_some()
            || self.s3_region.is_some()
            || self.s3_path_style
            || self.s3_keep_parts
            || self.s3_part_size.is_some()
    }

    /// The store's settings; what is unset falls back to the environment
    /// (read by the library, as the AWS tools read it).
    fn store(&self) -> Result<ObjectStore, Failure> {
        let mut store = ObjectStore::new();
        if let Some(url) = nonempty(&self.s3_endpoint) {
            store.set_endpoint(url)?;
        }
        if let Some(region) = nonempty(&self.s3_region) {
            store.set_region(region)?;
        }
        if self.s3_path_style {
            store.set_path_style(true);
        }
        store.set_keep_parts_on_failure(self.s3_keep_parts);
        if let Some(n) = self.s3_part_size {
            store.set_part_size(n)?;
        }
        Ok(store)
    }
}

const S3_HELP: &str = "\
-o s3://BUCKET/KEY streams the media into S3-compatible object storage (AWS
S3, MinIO, versitygw, COS, OSS) as a multipart upload, --parallel parts at a
time, without touching the disk; it replaces an existing object, as
`aws s3 cp` does. Credentials come from the environment only, never a flag:
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, for temporary ones,
AWS_SESSION_TOKEN. Refused credentials or a missing bucket exit 2.";

/// `s3://BUCKET/KEY` split, or None for any other output.
fn s3_target(output: &str) -> Option<Result<(&str, &str), Failure>> {
    let rest = output.strip_prefix("s3://")?;
    Some(match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok((bucket, key)),
        _ => Err(Failure::usage(format!(
            "{output:?}: give the object as s3://BUCKET/KEY"
        ))),
    })
}

/// A failure as the user sees it: one errcode, one message, one class.
struct Failure {
    errcode: i32,
    class: Class,
    message: String,
    /// An upload-by-url job already submitted: it goes on without us.
    jobid: Option<String>,
    /// What the transfer did before it failed (--json prints them).
    counters: Option<Box<CounterValues>>,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            errcode: wxmedia::error::WXM_E_INVALID_ARG,
            class: Class::Usage,
            message: message.into(),
            jobid: None,
            counters: None,
        }
    }

    fn local_io(message: impl Into<String>) -> Failure {
        Failure {
            errcode: wxmedia::error::WXM_E_IO,
            class: Class::LocalIo,
            message: message.into(),
            jobid: None,
            counters: None,
        }
    }

    fn with_jobid(mut self, jobid: &str) -> Failure {
        self.jobid = Some(jobid.to_string());
        self
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let errcode = e.code();
        let class = Class::of(&e);
        // The errcode is printed once, by `report`: a WeChat error's text is
        // its errmsg alone, where its Display would repeat "errcode N:".
        let message = match e {
            Error::WeChat { msg, .. } => msg,
            other => other.to_string(),
        };
        Failure {
            errcode,
            class,
            message,
            jobid: None,
            counters: None,
        }
    }
}

/// A command's result: the JSON object printed on success.
type Outcome = Result<serde_json::Value, Failure>;

fn main() {
    let cancel = Arc::new(AtomicBool::new(false));
    install_sigint(&cancel);
    let raw: Vec<String> = std::env::args().collect();
    // Known before parsing, so that a usage error can be JSON too.
    let json = raw
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&raw) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            if json {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or("usage error");
                print_failure_json(&Failure::usage(
                    first.strip_prefix("error: ").unwrap_or(first),
                ));
            }
            // clap prints the error with a usage line and exits 2.
            e.exit();
        }
    };
    let json = cli.global.json;
    let outcome = run(cli, cancel);
    match outcome {
        Ok(value) => {
            if json || !value.is_null() {
                println!("{value}");
            }
        }
        Err(f) => {
            eprintln!("wxmedia: errcode {}: {}", f.errcode, f.message);
            if let Some(jobid) = &f.jobid {
                eprintln!(
                    "wxmedia: job {jobid} goes on; wait for it with: wxmedia upload-by-url --jobid {jobid}"
                );
            }
            if f.class == Class::Usage {
                eprintln!("Run 'wxmedia --help' for usage.");
            }
            if json {
                print_failure_json(&f);
            }
            std::process::exit(f.class as i32);
        }
    }
}

fn print_failure_json(f: &Failure) {
    let mut v = serde_json::json!({
        "ok": false,
        "errcode": f.errcode,
        "message": f.message,
        "class": f.class.name(),
        "exit_code": f.class as i32,
    });
    if let Some(jobid) = &f.jobid {
        v["jobid"] = jobid.clone().into();
    }
    if let Some(c) = &f.counters {
        v["counters"] = counters_json(c);
    }
    println!("{v}");
}

/// Where SIGINT finds the cancel flag: set once, from an `Arc` leaked for
/// the life of the process, so the handler only does an atomic load and store.
static SIGINT_CANCEL: AtomicPtr<AtomicBool> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_sigint(_: libc::c_int) {
    let flag = SIGINT_CANCEL.load(Ordering::SeqCst);
    if !flag.is_null() {
        // SAFETY: the pointer came from Arc::into_raw and is never released,
        // so it stays valid; AtomicBool::store is async-signal-safe.
        unsafe { (*flag).store(true, Ordering::SeqCst) };
    }
    // A second Ctrl-C ends the process at once, as users expect.
    // SAFETY: signal() is async-signal-safe; SIG_DFL is a valid disposition.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
}

/// Ctrl-C cancels the transfer (the library notices within 100 ms), so a
/// download to a file keeps its resumable part and the exit code says why.
fn install_sigint(cancel: &Arc<AtomicBool>) {
    SIGINT_CANCEL.store(
        Arc::into_raw(Arc::clone(cancel)).cast_mut(),
        Ordering::SeqCst,
    );
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only touches an atomic and calls signal(), both
    // async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
}

fn run(cli: Cli, cancel: Arc<AtomicBool>) -> Outcome {
    let g = cli.global;
    match cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "wxmedia", &mut script);
            if g.json {
                let script = String::from_utf8_lossy(&script).into_owned();
                return Ok(
                    serde_json::json!({"ok": true, "shell": shell.to_string(), "script": script}),
                );
            }
            std::io::stdout()
                .write_all(&script)
                .map_err(|e| Failure::local_io(format!("standard output: {e}")))?;
            Ok(serde_json::Value::Null)
        }
        Command::Get {
            media_id,
            output,
            force,
            hd_voice,
            start,
            s3,
        } => {
            let req = GetRequest {
                media_id,
                output,
                force,
                hd_voice,
                start,
                s3,
            };
            let client = client(&g)?;
            get(client, &g, req, cancel)
        }
        Command::Upload {
            kind,
            file,
            filename,
            length,
        } => {
            let stdin = file.as_os_str() == "-";
            match (stdin, length, &filename) {
                (true, None, _) => return Err(Failure::usage("upload from - needs --length")),
                (true, _, None) => return Err(Failure::usage("upload from - needs --filename")),
                (false, Some(_), _) => {
                    return Err(Failure::usage("--length is for standard input (FILE -)"))
                }
                _ => {}
            }
            let client = client(&g)?;
            let file = if stdin { None } else { Some(file) };
            upload(client, &g, &kind, file, length, filename.as_deref(), cancel)
        }
        Command::UploadByUrl {
            kind,
            url,
            filename,
            md5,
            local,
            jobid,
            timeout,
        } => {
            let client = client(&g)?;
            // Submit and wait are two runs of the handle: --json counts both.
            let mut submitted = CounterValues::default();
            let job = match jobid {
                Some(j) => UrlUpload::for_job(client, &j)?.with_cancel_flag(cancel),
                None => {
                    let (Some(kind), Some(url)) = (kind, url) else {
                        return Err(Failure::usage("upload-by-url needs TYPE and URL"));
                    };
                    let filename = match (filename, &local) {
                        (Some(f), _) => f,
                        (None, Some(l)) => l
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .ok_or_else(|| Failure::usage("--local names no file"))?,
                        (None, None) => {
                            return Err(Failure::usage("upload-by-url needs --filename"))
                        }
                    };
                    let request = |md5| UrlUploadRequest {
                        scene: 1,
                        kind,
                        filename,
                        url,
                        md5,
                    };
                    let job = match (md5, local) {
                        (Some(m), None) => UrlUpload::new(client, request(m)),
                        (None, Some(local)) => {
                            let job = UrlUpload::new(client, request(String::new()));
                            job.set_md5_from_path(&local)?;
                            job
                        }
                        _ => return Err(Failure::usage("give one of --md5 or --local")),
                    }
                    .with_cancel_flag(cancel);
                    let jobid = match job.submit() {
                        Ok(j) => j,
                        Err(e) => return with_counters(Err(e.into()), g.json, job.counters()),
                    };
                    submitted = job.counters();
                    if !g.quiet && !g.json {
                        eprintln!("jobid {jobid}: waiting for WeChat to fetch the URL");
                    }
                    job
                }
            };
            let jobid = job.job().jobid.unwrap_or_default();
            let outcome = job
                .wait(Some(Duration::from_secs(timeout)))
                .map_err(|e| Failure::from(e).with_jobid(&jobid))
                .map(|done| {
                    serde_json::json!({
                        "ok": true,
                        "jobid": jobid,
                        "media_id": done.media_id,
                        "created_at": done.created_at,
                    })
                });
            let both = add_counters(submitted, job.counters());
            with_counters(outcome, g.json, both)
        }
    }
}

/// Parses a byte count with an optional K, M or G suffix (powers of 1024;
/// `KiB` and `KB` are read the same way, and a bare `B` means bytes).
fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size: give bytes, or a number with K, M or G (20M)");
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn client(g: &Global) -> Result<Arc<Client>, Failure> {
    let platform = match g.platform {
        PlatformArg::Wecom => Platform::WeCom,
        PlatformArg::Kf => Platform::Kf,
        PlatformArg::Official => Platform::Official,
        PlatformArg::Miniprogram => Platform::MiniProgram,
    };
    let mut cfg = Config::new(platform);
    if let Some(url) = nonempty(&g.base_url) {
        cfg.set_base_url(url)?;
    }
    let token = nonempty(&g.token);
    if let Some(t) = token {
        cfg.set_token(t)?;
    }
    // The Python and Go command lines read these; kept as fallbacks.
    let id = nonempty(&g.id).map(str::to_string).or_else(|| {
        ["WXMEDIA_CORPID", "WXMEDIA_APPID"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    });
    match (id, nonempty(&g.secret)) {
        (Some(id), Some(secret)) => cfg.set_credentials(&id, secret)?,
        (None, None) => {}
        // A token alone is enough: an id or secret left in the environment
        // beside it is not a mistake worth refusing.
        _ if token.is_some() => {}
        _ => return Err(Failure::usage("--id and --secret go together")),
    }
    if let Some(r) = nonempty(&g.redis) {
        cfg.set_token_store(r)?;
    }
    if let Some(n) = g.chunk_size {
        cfg.set_chunk_size(n)?;
    }
    if let Some(n) = g.parallel {
        cfg.set_parallelism(n)?;
    }
    if g.verbose > 0 {
        // -v: what an operator acts on (Info and up); -vv: every request too.
        let min = if g.verbose > 1 {
            Level::Debug
        } else {
            Level::Info
        };
        let bar_too = !g.quiet && is_tty(2);
        cfg.set_events(Events::new(
            Arc::new(move |e: &Event| print_event(e, bar_too)),
            min,
        ));
    }
    if !cfg.has_token_source() {
        return Err(Failure::usage(
            "no access token: give --token or --id/--secret (or WXMEDIA_ACCESS_TOKEN, or WXMEDIA_ID and WXMEDIA_SECRET)",
        ));
    }
    Ok(Arc::new(Client::new(cfg)?))
}

/// Prints one event as a line on stderr, or nothing for the kinds a line
/// would only repeat (a transfer's start and end: the outcome is printed
/// anyway, and --json has the counters). The library's messages and
/// endpoints carry no token or secret; none is added here.
fn print_event(e: &Event, bar_too: bool) {
    let Some(line) = event_line(e) else {
        return;
    };
    // Over a progress bar's line: clear it first; the bar redraws itself.
    let clear = if bar_too { "\r\x1b[K" } else { "" };
    let _ = writeln!(std::io::stderr().lock(), "{clear}wxmedia: {line}");
}

fn event_line(e: &Event) -> Option<String> {
    let ms = |us: u64| us as f64 / 1000.0;
    // One line per event: a server's text may end in a newline.
    let message = e.message.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = match e.kind {
        // The message says the endpoint, attempt, backoff and reason.
        Kind::RetryScheduled => format!("retry (errcode {}): {}", e.retry_reason, message),
        Kind::TokenFetched | Kind::TokenRefreshed | Kind::TokenShared => format!(
            "token ({:?}, {:.1} ms): {}",
            e.token_origin,
            ms(e.token_fetch_us),
            message
        ),
        Kind::ResumeDecided => format!("resume at byte {}: {}", e.resume_offset, message),
        Kind::ResumeCheckFailed => format!(
            "resume check failed at byte {} ({} bytes compared): {}",
            e.resume_offset, e.resume_verified, message
        ),
        Kind::Fallback if e.errcode != 0 => {
            format!("fallback (errcode {}): {}", e.errcode, message)
        }
        Kind::Fallback => format!("fallback: {}", message),
        Kind::RequestFinished => {
            let method = e.method;
            let mut l = format!(
                "{} {}",
                method,
                if e.endpoint.is_empty() {
                    "/"
                } else {
                    &e.endpoint
                }
            );
            if e.range_end > e.range_start {
                l += &format!(" bytes={}-{}", e.range_start, e.range_end - 1);
            }
            if e.via_video_url {
                l += " (video_url)";
            }
            l += &format!(
                ": status {}, {} bytes in {:.1} ms, attempt {}",
                e.http_status,
                e.bytes,
                ms(e.duration_us),
                e.attempt
            );
            if e.expect_continue != wxmedia::event::Continue::NotAsked {
                l += &format!(", 100-continue {:?}", e.expect_continue);
            }
            if e.errcode != 0 {
                l += &format!(", errcode {}: {}", e.errcode, message);
            }
            l
        }
        Kind::RequestStarted | Kind::TransferStarted | Kind::TransferFinished => return None,
    };
    Some(line)
}

/// The counters of two runs of one handle (an upload-by-url's submit, then
/// its wait), as one.
fn add_counters(a: CounterValues, b: CounterValues) -> CounterValues {
    CounterValues {
        transfer_id: b.transfer_id,
        requests: a.requests + b.requests,
        retries: a.retries + b.retries,
        bytes_received: a.bytes_received + b.bytes_received,
        bytes_sent: a.bytes_sent + b.bytes_sent,
        token_refreshes: a.token_refreshes + b.token_refreshes,
        resumed_from: b.resumed_from,
        elapsed_us: a.elapsed_us + b.elapsed_us,
    }
}

/// The counters as --json prints them.
fn counters_json(c: &CounterValues) -> serde_json::Value {
    serde_json::json!({
        "requests": c.requests,
        "retries": c.retries,
        "bytes_received": c.bytes_received,
        "bytes_sent": c.bytes_sent,
        "token_refreshes": c.token_refreshes,
        "resumed_from": c.resumed_from,
        "elapsed_us": c.elapsed_us,
    })
}

/// Adds a transfer's counters to its --json output, success or failure.
fn with_counters(outcome: Outcome, json: bool, c: CounterValues) -> Outcome {
    if !json {
        return outcome;
    }
    match outcome {
        Ok(mut v) => {
            if v.is_object() {
                v["counters"] = counters_json(&c);
            }
            Ok(v)
        }
        Err(f) => Err(Failure {
            counters: Some(Box::new(c)),
            ..f
        }),
    }
}

/// An empty environment variable counts as unset.
fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
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
        let now = Instant::now();
        Progress {
            enabled: !quiet && is_tty(2),
            started: now,
            last: now.checked_sub(Duration::from_secs(1)).unwrap_or(now),
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
            let filled = ((pct / 100.0 * 30.0) as usize).min(30);
            format!(
                "\r[{}{}] {pct:5.1}% {done}/{total} bytes {rate:.1} MB/s",
                "#".repeat(filled),
                " ".repeat(30 - filled)
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

    /// The bar as a transfer's progress callback (the transfer paces it).
    fn shared(quiet: bool) -> (Arc<Mutex<Progress>>, ProgressFn) {
        let bar = Arc::new(Mutex::new(Progress::new(quiet)));
        let fed = bar.clone();
        let f: ProgressFn = Arc::new(move |done, total| {
            if let Ok(mut p) = fed.lock() {
                p.update(done, total);
            }
            Ok(())
        });
        (bar, f)
    }
}

/// Ends the bar's line, once the transfer is over.
fn finish_bar(bar: &Mutex<Progress>) {
    if let Ok(p) = bar.lock() {
        p.finish();
    }
}

struct StdoutSink<'a> {
    out: std::io::StdoutLock<'a>,
}

impl Sink for StdoutSink<'_> {
    fn write(&mut self, _offset: u64, data: &[u8]) -> wxmedia::Result<()> {
        self.out
            .write_all(data)
            .map_err(|e| Error::Io(format!("standard output: {e}")))
    }
}

struct GetRequest {
    media_id: String,
    output: Option<String>,
    force: bool,
    hd_voice: bool,
    start: Option<u64>,
    s3: S3Args,
}

/// Refuses to replace `path` unless `--force`. `to_path` renames over its
/// target, so this is checked before the transfer starts.
fn refuse_existing(path: &Path, force: bool) -> Result<(), Failure> {
    if !force && path.symlink_metadata().is_ok() {
        return Err(Failure::local_io(format!(
            "{} exists: not overwritten (--force replaces it)",
            path.display()
        )));
    }
    Ok(())
}

fn get(client: Arc<Client>, g: &Global, req: GetRequest, cancel: Arc<AtomicBool>) -> Outcome {
    let media_id = req.media_id.as_str();
    if req.start.is_some() && req.output.as_deref() != Some("-") {
        return Err(Failure::usage(
            "--start is for -o -: a download to a file resumes by itself",
        ));
    }
    let s3 = req.output.as_deref().and_then(s3_target).transpose()?;
    if s3.is_none() && req.s3.any() {
        return Err(Failure::usage(
            "the --s3-* options are for -o s3://BUCKET/KEY",
        ));
    }
    let dl = Download::new(client, media_id)?.with_cancel_flag(cancel);
    let outcome = match s3 {
        Some((bucket, key)) => get_object(&dl, g, &req, bucket, key),
        None => get_with(&dl, g, &req),
    };
    with_counters(outcome, g.json, dl.counters())
}

fn get_with(dl: &Download, g: &Global, req: &GetRequest) -> Outcome {
    let media_id = req.media_id.as_str();
    let say_saved = !g.quiet && !g.json;
    dl.set_hd_voice(req.hd_voice);
    let (bar, progress) = Progress::shared(g.quiet);
    dl.set_progress(Some(progress));
    let (info, path): (MediaInfo, Option<String>) = match req.output.as_deref() {
        Some("-") => {
            if g.json {
                return Err(Failure::usage(
                    "--json prints on stdout, where -o - writes the media: give -o FILE",
                ));
            }
            let mut sink = StdoutSink {
                out: std::io::stdout().lock(),
            };
            dl.set_start(req.start.unwrap_or(0));
            let info = dl.to_sink(&mut sink)?;
            finish_bar(&bar);
            (info, None)
        }
        Some(path) => {
            refuse_existing(Path::new(path), req.force)?;
            let info = dl.to_path(Path::new(path))?;
            finish_bar(&bar);
            (info, Some(path.to_string()))
        }
        None => {
            // The server's name is known only after the first answer: fetch
            // into a name made from the media_id, then rename.
            let encoded = wxmedia::range::query_encode(media_id);
            let tmp = PathBuf::from(format!(".wxmedia-{encoded}"));
            let info = dl.to_path(&tmp)?;
            finish_bar(&bar);
            // The library already keeps only a safe last path component;
            // this keeps the rename inside the current directory regardless.
            let name = info
                .filename
                .as_deref()
                .and_then(|n| Path::new(n).file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("{encoded}.bin"));
            if let Err(f) = refuse_existing(Path::new(&name), req.force) {
                return Err(Failure {
                    message: format!("{}; the media is in {}", f.message, tmp.display()),
                    ..f
                });
            }
            std::fs::rename(&tmp, &name)
                .map_err(|e| Failure::local_io(format!("naming {name}: {e}")))?;
            (info, Some(name))
        }
    };
    if let Some(p) = &path {
        if say_saved {
            eprintln!("saved {} bytes to {p}", info.size.unwrap_or(0));
        }
    }
    if !g.json {
        if let Some(url) = &info.video_url {
            eprintln!("video_url: {url}");
        }
        return Ok(serde_json::Value::Null);
    }
    Ok(serde_json::json!({
        "ok": true,
        "media_id": media_id,
        "path": path,
        "size": info.size,
        "content_type": info.content_type,
        "filename": info.filename,
        "video_url": info.video_url,
    }))
}

/// `get -o s3://BUCKET/KEY`: the library's `to_object`, which resumes
/// kept parts of the same media by itself.
fn get_object(dl: &Download, g: &Global, req: &GetRequest, bucket: &str, key: &str) -> Outcome {
    let store = req.s3.store()?;
    dl.set_hd_voice(req.hd_voice);
    let (bar, progress) = Progress::shared(g.quiet);
    dl.set_progress(Some(progress));
    let info = dl.to_object(&store, bucket, key)?;
    finish_bar(&bar);
    let target = format!("s3://{bucket}/{key}");
    if !g.json {
        if !g.quiet {
            eprintln!("saved {} bytes to {target}", info.size.unwrap_or(0));
        }
        return Ok(serde_json::Value::Null);
    }
    Ok(serde_json::json!({
        "ok": true,
        "media_id": req.media_id,
        "path": null,
        "target": target,
        "bucket": bucket,
        "key": key,
        "size": info.size,
        "content_type": info.content_type,
        "filename": info.filename,
        "video_url": info.video_url,
    }))
}

/// Uploads `file`, or `length` bytes of standard input when `file` is None.
fn upload(
    client: Arc<Client>,
    g: &Global,
    kind: &str,
    file: Option<PathBuf>,
    length: Option<u64>,
    filename: Option<&str>,
    cancel: Arc<AtomicBool>,
) -> Outcome {
    let up = Upload::new(client, kind).with_cancel_flag(cancel);
    let outcome = upload_with(&up, g, file, length, filename);
    with_counters(outcome, g.json, up.counters())
}

fn upload_with(
    up: &Upload,
    g: &Global,
    file: Option<PathBuf>,
    length: Option<u64>,
    filename: Option<&str>,
) -> Outcome {
    match file {
        Some(path) => up.set_path(path)?,
        None => up.set_reader(
            Arc::new(|buf: &mut [u8]| {
                std::io::Read::read(&mut std::io::stdin().lock(), buf)
                    .map_err(|e| Error::Io(format!("standard input: {e}")))
            }),
            length.unwrap_or(0),
        ),
    }
    if let Some(name) = filename {
        up.set_filename(name);
    }
    let (bar, progress) = Progress::shared(g.quiet);
    up.set_progress(Some(progress));
    let r = up.run()?;
    finish_bar(&bar);
    Ok(match &r.url {
        Some(url) => serde_json::json!({"ok": true, "type": r.kind, "url": url}),
        None => serde_json::json!({
            "ok": true,
            "type": r.kind,
            "media_id": r.media_id,
            "created_at": r.created_at,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_with_and_without_suffixes() {
        for (text, bytes) in [
            ("0", 0),
            ("16", 16),
            ("512K", 512 << 10),
            ("512k", 512 << 10),
            ("64KiB", 64 << 10),
            ("20M", 20 << 20),
            ("20 MB", 20 << 20),
            ("20mib", 20 << 20),
            ("1G", 1 << 30),
            ("3GiB", 3 << 30),
            ("100B", 100),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for text in [
            "",
            "M",
            "1.5M",
            "20X",
            "-1",
            "5i",
            "5ib",
            "1T",
            "K20",
            "18014398509481984G",
        ] {
            assert!(parse_size(text).is_err(), "{text}");
        }
    }
}
