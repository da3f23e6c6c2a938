//! `wxmedia-emulator`: the WeChat temporary-media API emulator as a program.
//! Prints the bound address as its first stdout line; SIGTERM/SIGINT stop it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use wxmedia_emulator::{Emulator, Options};

const USAGE: &str =
    "usage: wxmedia-emulator [--listen 127.0.0.1:0] [--platform wecom|kf|official|miniprogram]
                        [--token-ttl SECONDS (7200)] [--media DIR] [--store-uploads]
                        [--corpid ID (wxm-corp)] [--secret SECRET (wxm-secret)]
                        [--access-token TOKEN]... [--limit TYPE=BYTES]...
                        [--job-delay-ms MS (300)]";

fn parse_args() -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                o.listen = v.parse().map_err(|e| format!("--listen {v:?}: {e}"))?;
            }
            "--platform" => o.platform = value("--platform")?.parse()?,
            "--token-ttl" => {
                let v = value("--token-ttl")?;
                let secs: u64 = v.parse().map_err(|e| format!("--token-ttl {v:?}: {e}"))?;
                o.token_ttl = Duration::from_secs(secs);
            }
            "--media" => o.media_dir = Some(PathBuf::from(value("--media")?)),
            "--store-uploads" => o.store_uploads = true,
            "--corpid" | "--appid" => o.corpid = value("--corpid")?,
            "--secret" => o.secret = value("--secret")?,
            "--access-token" => o.access_tokens.push(value("--access-token")?),
            "--limit" => {
                let v = value("--limit")?;
                let (t, n) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--limit {v:?}: expected TYPE=BYTES"))?;
                let n: u64 = n.parse().map_err(|e| format!("--limit {v:?}: {e}"))?;
                o.limits.insert(t.to_ascii_lowercase(), n);
            }
            "--job-delay-ms" => {
                let v = value("--job-delay-ms")?;
                let ms: u64 = v
                    .parse()
                    .map_err(|e| format!("--job-delay-ms {v:?}: {e}"))?;
                o.job_delay = Duration::from_millis(ms);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.store_uploads && o.media_dir.is_none() {
        return Err("--store-uploads needs --media DIR".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("wxmedia-emulator: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let platform = opts.platform;
    let emu = match Emulator::start(opts) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("wxmedia-emulator: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", emu.addr());
        let _ = out.flush();
    }
    eprintln!(
        "wxmedia-emulator: {} on {} (admin API under /__admin/)",
        platform.name(),
        emu.base_url()
    );
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wxmedia-emulator: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            // Without signal handlers, serve until killed.
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    });
    drop(emu);
    ExitCode::SUCCESS
}
