//! The `wxmedia` command, run as a user would, against the emulator: one
//! table of failures (each exit-code class, with `--json` parsed), one of
//! successes (each command with `--json`), then Ctrl-C and the plain-text
//! forms users and scripts already rely on.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use wxmedia_emulator::{Emulator, Options};

const TOKEN: &str = "cli-test-token-0001";
const CORPID: &str = "cli-corp";
const SECRET: &str = "cli-secret-do-not-print";
const DASH_ID: &str = "-dash.bin";

struct Setup {
    emu: Emulator,
    dir: PathBuf,
    media: Vec<u8>,
    media_id: String,
    _media_dir: TempDir,
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("wxmedia-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pattern(n: u32, mul: u32) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(mul) % 251) as u8).collect()
}

/// An emulator whose media dir holds a media named `-dash.bin`, and one
/// uploaded media of 300 000 bytes.
fn setup(tag: &str, dir: &TempDir) -> Setup {
    let media_dir = TempDir::new(&format!("{tag}-media"));
    std::fs::write(media_dir.0.join(DASH_ID), pattern(5000, 7)).expect("dash media");
    let emu = Emulator::start(Options {
        access_tokens: vec![TOKEN.into()],
        corpid: CORPID.into(),
        secret: SECRET.into(),
        media_dir: Some(media_dir.0.clone()),
        ..Options::default()
    })
    .expect("emulator");
    let media = pattern(300_000, 31);
    std::fs::write(dir.0.join("报告.pdf"), &media).expect("write");
    let out = wxmedia(&emu, &["upload", "file", "报告.pdf"], &dir.0, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let media_id = answer["media_id"].as_str().expect("media_id").to_string();
    assert!(answer["created_at"].as_i64().unwrap_or(0) > 0);
    Setup {
        emu,
        dir: dir.0.clone(),
        media,
        media_id,
        _media_dir: media_dir,
    }
}

fn command(emu: &Emulator, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wxmedia"));
    c.args(args).current_dir(dir);
    for v in [
        "WXMEDIA_ID",
        "WXMEDIA_SECRET",
        "WXMEDIA_CORPID",
        "WXMEDIA_APPID",
        "WXMEDIA_PLATFORM",
        "WXMEDIA_REDIS",
    ] {
        c.env_remove(v);
    }
    c.env("WXMEDIA_BASE_URL", emu.base_url())
        .env("WXMEDIA_ACCESS_TOKEN", TOKEN);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn wxmedia(emu: &Emulator, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    command(emu, args, dir, env).output().expect("wxmedia runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A loopback port with nothing listening on it.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

struct Failing {
    what: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// Queued on the emulator just before the run.
    fault: Option<Value>,
    exit: i32,
    class: &'static str,
    errcode: i64,
}

fn failing(
    what: &'static str,
    args: &[&str],
    exit: i32,
    class: &'static str,
    errcode: i64,
) -> Failing {
    Failing {
        what,
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        fault: None,
        exit,
        class,
        errcode,
    }
}

#[test]
fn each_failure_class_has_its_exit_code_and_one_json_object() {
    let dir = TempDir::new("fail");
    let s = setup("fail", &dir);
    let id = s.media_id.as_str();
    std::fs::write(s.dir.join("tiny.txt"), b"abc").expect("write");
    std::fs::write(s.dir.join("exists.bin"), b"keep me").expect("write");
    std::fs::write(s.dir.join("clip.mp4"), pattern(200_000, 13)).expect("write");
    let video_url = format!("{}/__video/{id}", s.emu.base_url());
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let zeros = "0".repeat(32);

    let mut table = vec![
        // WeChat errcodes, one per command that talks to WeChat.
        failing(
            "unknown media",
            &["get", "no-such-media", "-o", "x.bin"],
            1,
            "wechat",
            40007,
        ),
        failing(
            "file too small",
            &["upload", "file", "tiny.txt"],
            1,
            "wechat",
            40006,
        ),
        failing(
            "job fails on MD5",
            &[
                "upload-by-url",
                "video",
                &video_url,
                "--filename",
                "c.mp4",
                "--md5",
                &zeros,
            ],
            1,
            "wechat",
            301019,
        ),
        failing(
            "job still processing at --timeout",
            &[
                "upload-by-url",
                "video",
                &video_url,
                "--local",
                "clip.mp4",
                "--timeout",
                "0",
            ],
            3,
            "network",
            -1004,
        ),
        failing(
            "errcode from the server",
            &["get", id, "-o", "e.bin"],
            1,
            "wechat",
            48001,
        ),
        // Usage: clap's own errors and the library's argument checks.
        failing("unknown command", &["frobnicate"], 2, "usage", -1001),
        failing("get without MEDIA_ID", &["get"], 2, "usage", -1001),
        failing(
            "unknown platform",
            &["--platform", "mars", "get", "x"],
            2,
            "usage",
            -1001,
        ),
        failing(
            "upload without FILE",
            &["upload", "file"],
            2,
            "usage",
            -1001,
        ),
        failing(
            "bad size suffix",
            &["--chunk-size", "20X", "get", id],
            2,
            "usage",
            -1001,
        ),
        failing(
            "chunk not a multiple of 16",
            &["--chunk-size", "100", "get", id],
            2,
            "usage",
            -1001,
        ),
        failing(
            "chunk above 20M",
            &["--chunk-size", "21M", "get", id],
            2,
            "usage",
            -1001,
        ),
        failing(
            "dash media_id without --",
            &["get", "-o", "d.bin", DASH_ID],
            2,
            "usage",
            -1001,
        ),
        failing(
            "--json with -o -",
            &["get", id, "-o", "-"],
            2,
            "usage",
            -1001,
        ),
        failing(
            "--start to a file",
            &["get", id, "-o", "s.bin", "--start", "16"],
            2,
            "usage",
            -1001,
        ),
        failing(
            "md5 and local",
            &[
                "upload-by-url",
                "video",
                &video_url,
                "--md5",
                &zeros,
                "--local",
                "clip.mp4",
            ],
            2,
            "usage",
            -1001,
        ),
        failing(
            "stdin without --length",
            &["upload", "file", "-", "--filename", "a"],
            2,
            "usage",
            -1001,
        ),
        failing(
            "--length with a file",
            &["upload", "file", "tiny.txt", "--length", "3"],
            2,
            "usage",
            -1001,
        ),
        failing("bad shell", &["completions", "tcsh"], 2, "usage", -1001),
        // Network: nothing listening, and an HTTP status WeChat never uses.
        failing(
            "connection refused",
            &["--base-url", &dead, "get", id, "-o", "n.bin"],
            3,
            "network",
            -1003,
        ),
        failing("HTTP 404", &["get", id, "-o", "h.bin"], 3, "network", -1006),
        // Local I/O.
        failing(
            "output exists",
            &["get", id, "-o", "exists.bin"],
            4,
            "local_io",
            -1002,
        ),
        failing(
            "no such directory",
            &["get", id, "-o", "nowhere/x.bin"],
            4,
            "local_io",
            -1002,
        ),
        failing(
            "no such input",
            &["upload", "file", "missing.bin"],
            4,
            "local_io",
            -1002,
        ),
        failing(
            "unreadable --local",
            &[
                "upload-by-url",
                "video",
                &video_url,
                "--local",
                "missing.mp4",
            ],
            4,
            "local_io",
            -1002,
        ),
    ];
    for case in table.iter_mut() {
        match case.what {
            "errcode from the server" => {
                case.fault = Some(json!({"kind": "errcode", "errcode": 48001}))
            }
            "HTTP 404" => case.fault = Some(json!({"kind": "http_status", "status": 404})),
            _ => {}
        }
    }
    let no_token = Failing {
        env: vec![("WXMEDIA_ACCESS_TOKEN", String::new())],
        ..failing("no token", &["get", id], 2, "usage", -1001)
    };
    table.push(no_token);

    for case in &table {
        if let Some(f) = &case.fault {
            s.emu.admin_post("faults", f).expect("fault");
        }
        let mut args = vec!["--json"];
        args.extend(case.args.iter().map(String::as_str));
        let env: Vec<(&str, &str)> = case.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = wxmedia(&s.emu, &args, &s.dir, &env);
        let stdout = text(&out.stdout);
        let stderr = text(&out.stderr);
        let what = case.what;
        assert_eq!(out.status.code(), Some(case.exit), "{what}: {stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{what}: one JSON object on stdout: {stdout}"
        );
        let v: Value = serde_json::from_str(lines[0]).expect("JSON");
        assert_eq!(v["ok"], false, "{what}");
        assert_eq!(v["class"], case.class, "{what}: {v}");
        assert_eq!(v["errcode"], case.errcode, "{what}: {v}");
        assert_eq!(v["exit_code"], case.exit, "{what}");
        assert!(!v["message"].as_str().unwrap_or("").is_empty(), "{what}");
        if what.starts_with("job") {
            // Submitted: the job goes on, and its id says how to find it.
            let jobid = v["jobid"].as_str().unwrap_or("");
            assert!(!jobid.is_empty(), "{what}: {v}");
            assert!(
                stderr.contains(&format!("--jobid {jobid}")),
                "{what}: {stderr}"
            );
        }
        for secret in [TOKEN, SECRET] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{what}: {stderr}"
            );
        }
        if case.class != "usage" {
            // The errcode once: `wxmedia: errcode N: message`, not "errcode N: errcode N:".
            let code = case.errcode.to_string();
            assert!(
                stderr.contains(&format!("wxmedia: errcode {code}: ")),
                "{what}: {stderr}"
            );
            let said = format!("errcode {code}");
            assert_eq!(stderr.matches(&said).count(), 1, "{what}: {stderr}");
        }
    }
    assert_eq!(
        std::fs::read(s.dir.join("exists.bin")).expect("kept"),
        b"keep me"
    );
    for name in [
        "x.bin", "e.bin", "n.bin", "h.bin", "r.bin", "d.bin", "s.bin",
    ] {
        assert!(!s.dir.join(name).exists(), "{name}");
    }
}

#[test]
fn every_command_prints_one_json_object_with_json() {
    let dir = TempDir::new("ok");
    let s = setup("ok", &dir);
    let id = s.media_id.as_str();
    let run = |args: &[&str], env: &[(&str, &str)]| -> Value {
        let out = wxmedia(&s.emu, args, &s.dir, env);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "{args:?}: {stdout}");
        let v: Value = serde_json::from_str(&stdout).expect("JSON");
        assert_eq!(v["ok"], true, "{args:?}: {v}");
        v
    };

    // get, with sizes in suffixes: 64K chunks are 65536-byte Range requests.
    s.emu.admin_post("reset", &json!({})).expect("reset");
    let v = run(
        &[
            "--chunk-size",
            "64K",
            "--parallel",
            "3",
            "--json",
            "get",
            id,
            "-o",
            "copy.bin",
        ],
        &[],
    );
    assert_eq!(v["size"], 300_000);
    assert_eq!(v["path"], "copy.bin");
    assert_eq!(v["media_id"], id);
    assert_eq!(v["filename"], "报告.pdf");
    assert_eq!(
        std::fs::read(s.dir.join("copy.bin")).expect("copy"),
        s.media
    );
    let stats = s.emu.admin_get("stats").expect("stats");
    let spans: Vec<u64> = stats["ranges"]
        .as_array()
        .expect("ranges")
        .iter()
        .filter(|r| r["media_id"] == id)
        .filter_map(|r| Some(r["end"].as_u64()? - r["start"].as_u64()? + 1))
        .collect();
    assert_eq!(spans.iter().max(), Some(&65536), "{spans:?}");

    // --force replaces, and options after the command are read the same.
    std::fs::write(s.dir.join("old.bin"), b"old").expect("write");
    run(
        &[
            "get",
            id,
            "-o",
            "old.bin",
            "--force",
            "--json",
            "--parallelism",
            "2",
        ],
        &[],
    );
    assert_eq!(std::fs::read(s.dir.join("old.bin")).expect("old"), s.media);

    // `--` ends options: a media_id that starts with '-'.
    let v = run(&["--json", "get", "-o", "dash.bin", "--", DASH_ID], &[]);
    assert_eq!(v["media_id"], DASH_ID);
    assert_eq!(
        std::fs::read(s.dir.join("dash.bin")).expect("dash"),
        pattern(5000, 7)
    );

    // Credentials from the environment, old and new spellings.
    for var in ["WXMEDIA_ID", "WXMEDIA_CORPID"] {
        let env = [
            (var, CORPID),
            ("WXMEDIA_SECRET", SECRET),
            ("WXMEDIA_ACCESS_TOKEN", ""),
        ];
        let out = format!("cred-{var}.bin");
        run(&["get", id, "-o", &out, "--json"], &env);
        assert_eq!(std::fs::read(s.dir.join(&out)).expect("cred"), s.media);
    }

    // upload (JSON with or without --json), upload-by-url, then --jobid.
    std::fs::write(s.dir.join("clip.mp4"), pattern(200_000, 13)).expect("write");
    let up = run(&["--json", "upload", "file", "clip.mp4"], &[]);
    assert_eq!(up["type"], "file");
    let clip_id = up["media_id"].as_str().expect("media_id");
    let url = format!("{}/__video/{clip_id}", s.emu.base_url());
    let job = run(
        &[
            "upload-by-url",
            "--json",
            "video",
            &url,
            "--local",
            "clip.mp4",
            "--timeout",
            "30",
        ],
        &[],
    );
    let jobid = job["jobid"].as_str().expect("jobid");
    let by_url = job["media_id"].as_str().expect("media_id");
    let again = run(&["upload-by-url", "--json", "--jobid", jobid], &[]);
    assert_eq!(again["media_id"], by_url);
    let out = wxmedia(&s.emu, &["get", by_url, "-o", "-"], &s.dir, &[]);
    assert_eq!(out.stdout, pattern(200_000, 13));

    // upload from standard input, sized with a suffix.
    let data = pattern(20 * 1024, 3);
    let mut child = command(
        &s.emu,
        &[
            "upload",
            "--json",
            "file",
            "-",
            "--length",
            "20K",
            "--filename",
            "in.bin",
        ],
        &s.dir,
        &[],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &data).expect("feed");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let stdin_id = v["media_id"].as_str().expect("media_id");
    let out = wxmedia(&s.emu, &["get", stdin_id, "-o", "-"], &s.dir, &[]);
    assert_eq!(out.stdout, data);

    // completions: a script per shell, and the same as JSON.
    for (shell, mark) in [
        ("bash", "_wxmedia()"),
        ("zsh", "#compdef wxmedia"),
        ("fish", "complete -c wxmedia"),
    ] {
        let out = wxmedia(&s.emu, &["completions", shell], &s.dir, &[]);
        assert!(out.status.success());
        let script = text(&out.stdout);
        assert!(
            script.contains(mark) && script.contains("upload-by-url"),
            "{shell}: {script}"
        );
        let v = run(&["completions", shell, "--json"], &[]);
        assert_eq!(v["script"], script.as_str());
    }
}

#[test]
fn version_help_and_plain_text_output() {
    let dir = TempDir::new("plain");
    let s = setup("plain", &dir);
    let id = s.media_id.as_str();

    let out = wxmedia(&s.emu, &["--version"], &s.dir, &[]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("wxmedia {}", env!("CARGO_PKG_VERSION"))
    );
    let out = wxmedia(&s.emu, &["--help"], &s.dir, &[]);
    let help = text(&out.stdout);
    assert!(out.status.success());
    for word in [
        "Exit status",
        "130",
        "token store",
        "WXMEDIA_ACCESS_TOKEN",
        "completions",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
    for (cmd, flag) in [
        ("get", "--force"),
        ("upload", "--filename"),
        ("upload-by-url", "--jobid"),
        ("completions", "<SHELL>"),
    ] {
        let out = wxmedia(&s.emu, &[cmd, "--help"], &s.dir, &[]);
        assert!(out.status.success(), "{cmd}");
        assert!(
            text(&out.stdout).contains(flag),
            "{cmd} --help: {}",
            text(&out.stdout)
        );
    }

    // Without --json: a "saved" line, nothing with --quiet, bytes on -o -.
    let out = wxmedia(&s.emu, &["get", id, "-o", "copy.bin"], &s.dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("saved 300000 bytes to copy.bin"));
    let out = wxmedia(
        &s.emu,
        &["--quiet", "get", id, "-o", "quiet.bin"],
        &s.dir,
        &[],
    );
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(s.dir.join("quiet.bin")).expect("quiet"),
        s.media
    );
    let out = wxmedia(&s.emu, &["get", id, "-o", "-"], &s.dir, &[]);
    assert_eq!(out.stdout, s.media);
    let out = wxmedia(
        &s.emu,
        &["get", id, "-o", "-", "--start", "1K"],
        &s.dir,
        &[],
    );
    assert_eq!(out.stdout, &s.media[1024..]);

    // No -o: the server's name; a second time it is there and kept.
    std::fs::remove_file(s.dir.join("报告.pdf")).expect("rm");
    let out = wxmedia(&s.emu, &["get", id], &s.dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(s.dir.join("报告.pdf")).expect("by name"),
        s.media
    );
    std::fs::write(s.dir.join("报告.pdf"), b"mine").expect("write");
    let out = wxmedia(&s.emu, &["get", id], &s.dir, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(s.dir.join("报告.pdf")).expect("kept"),
        b"mine"
    );
    let out = wxmedia(&s.emu, &["get", id, "--force"], &s.dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(s.dir.join("报告.pdf")).expect("replaced"),
        s.media
    );

    // A usage error shows the usage.
    let out = wxmedia(&s.emu, &["get"], &s.dir, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("Usage: wxmedia get"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ctrl_c_cancels_with_130_and_the_download_resumes() {
    let dir = TempDir::new("sigint");
    let s = setup("sigint", &dir);
    let id = s.media_id.as_str();
    s.emu
        .admin_post(
            "faults",
            &json!({"kind": "throttle", "bytes_per_sec": 20_000, "count": 100}),
        )
        .expect("throttle");
    let mut child = command(
        &s.emu,
        &["--json", "--chunk-size", "64K", "get", id, "-o", "big.bin"],
        &s.dir,
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    // Let it download a chunk or so, into the resumable part file.
    std::thread::sleep(Duration::from_millis(1500));
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill() with a child's pid and SIGINT has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let sent = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "Ctrl-C not seen");
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    assert_eq!(status.code(), Some(130), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["class"], "cancelled");
    assert_eq!(v["errcode"], -1009);
    assert!(!s.dir.join("big.bin").exists());
    let part = s.dir.join("big.bin.wxmpart");
    assert!(part.exists(), "the part file stays for a resume");

    s.emu.admin_post("reset", &json!({})).expect("reset");
    let out = wxmedia(&s.emu, &["-v", "get", id, "-o", "big.bin"], &s.dir, &[]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(std::fs::read(s.dir.join("big.bin")).expect("big"), s.media);
    // -v says where it resumed and how much of the kept part it checked.
    assert!(stderr.contains("wxmedia: resume at byte "), "{stderr}");
}

#[test]
fn a_progress_bar_on_a_terminal_and_none_elsewhere() {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let dir = TempDir::new("tty");
    let s = setup("tty", &dir);
    s.emu
        .admin_post(
            "faults",
            &json!({"kind": "throttle", "bytes_per_sec": 400_000, "count": 10}),
        )
        .expect("throttle");
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the two ints; the name,
    // termios and winsize pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned here alone.
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
        )
    };
    let mut cmd = command(
        &s.emu,
        &["--chunk-size", "64K", "get", &s.media_id, "-o", "p.bin"],
        &s.dir,
        &[],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::from(slave));
    let mut child = cmd.spawn().expect("spawn");
    drop(cmd); // our copy of the terminal's slave side: EOF when the child ends
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // Reading the master ends with EIO once the child has closed the slave.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(child.wait().expect("wait").success());
    let bar = text(&seen);
    assert!(
        bar.contains("\r[") && bar.contains("100.0%") && bar.contains("saved 300000 bytes"),
        "{bar}"
    );
    assert!(bar.matches('%').count() >= 3, "redrawn as it goes: {bar}");
    assert_eq!(std::fs::read(s.dir.join("p.bin")).expect("p"), s.media);

    // Not a terminal: no bar.
    let out = wxmedia(&s.emu, &["get", &s.media_id, "-o", "q.bin"], &s.dir, &[]);
    assert!(
        out.status.success() && !text(&out.stderr).contains('%'),
        "{}",
        text(&out.stderr)
    );
}

/// Every line of an output that is not a verbose event line is left alone;
/// no output of a verbose run may hold a token, the secret or a query.
fn assert_no_secret(what: &str, out: &str) {
    // "wxmtok": how the emulator's fetched tokens begin.
    for secret in [TOKEN, SECRET, "wxmtok", "access_token=", "corpsecret"] {
        assert!(!out.contains(secret), "{what}: {secret} in {out}");
    }
}

fn counters(v: &Value) -> (u64, u64, u64, u64) {
    let c = &v["counters"];
    let get = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(get("elapsed_us") > 0, "{v}");
    assert_eq!(get("bytes_sent"), 0, "{v}");
    (
        get("requests"),
        get("retries"),
        get("bytes_received"),
        get("token_refreshes"),
    )
}

#[test]
fn verbose_lines_show_retries_and_requests_and_json_counts_them() {
    let dir = TempDir::new("verbose");
    let s = setup("verbose", &dir);
    let id = s.media_id.as_str();
    let fault_503 = |count: u32| {
        s.emu
            .admin_post(
                "faults",
                &json!({"kind": "http_status", "status": 503, "count": count}),
            )
            .expect("fault");
    };

    // Default verbosity: a retried 503 is silent; only the "saved" line.
    fault_503(1);
    let out = wxmedia(&s.emu, &["get", id, "-o", "quiet.bin"], &s.dir, &[]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.trim(), "saved 300000 bytes to quiet.bin");

    // -v: one retry line naming the endpoint, attempt, backoff and reason;
    // no request lines.
    fault_503(1);
    let out = wxmedia(&s.emu, &["-v", "get", id, "-o", "v.bin"], &s.dir, &[]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let retries: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("wxmedia: retry"))
        .collect();
    assert_eq!(retries.len(), 1, "{stderr}");
    for word in ["media/get", "attempt 2", " ms", "503", "errcode -1006"] {
        assert!(retries[0].contains(word), "{word}: {stderr}");
    }
    assert!(!stderr.contains("wxmedia: GET"), "{stderr}");
    assert_no_secret("-v", &stderr);
    assert_eq!(std::fs::read(s.dir.join("v.bin")).expect("v"), s.media);

    // -vv with --json: a line per request, as many as the counters say;
    // the retries counted are the faults injected.
    fault_503(2);
    let out = wxmedia(
        &s.emu,
        &[
            "-vv",
            "--json",
            "--chunk-size",
            "64K",
            "get",
            id,
            "-o",
            "vv.bin",
        ],
        &s.dir,
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let (requests, retries, received, refreshes) = counters(&v);
    // 300 000 bytes in 64 KiB Range requests: 5, and the 2 that failed.
    assert_eq!((requests, retries, received, refreshes), (7, 2, 300_000, 0));
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("wxmedia: GET cgi-bin/media/get bytes="))
        .collect();
    assert_eq!(lines.len() as u64, requests, "{stderr}");
    assert_eq!(
        lines.iter().filter(|l| l.contains("status 503")).count(),
        2,
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("bytes=0-65535: status 206, 65536 bytes in")),
        "{stderr}"
    );
    assert_eq!(stderr.matches("wxmedia: retry").count(), 2, "{stderr}");
    assert_no_secret("-vv", &stderr);
    assert_no_secret("-vv stdout", &text(&out.stdout));

    // A failure counts too: 4 attempts, 3 retries, nothing received.
    fault_503(10);
    let out = wxmedia(
        &s.emu,
        &["--json", "get", id, "-o", "fail.bin"],
        &s.dir,
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["ok"], false);
    assert_eq!(counters(&v), (4, 3, 0, 0), "{v}");
    s.emu.admin_post("reset", &json!({})).expect("reset");

    // Credentials: -vv shows the token fetch and its refresh after a
    // rejection (counted), and neither the token nor the secret.
    let creds = [
        ("WXMEDIA_ID", CORPID),
        ("WXMEDIA_SECRET", SECRET),
        ("WXMEDIA_ACCESS_TOKEN", ""),
    ];
    s.emu
        .admin_post(
            "faults",
            &json!({"kind": "token_expire", "after_bytes": 100_000}),
        )
        .expect("fault");
    let out = wxmedia(
        &s.emu,
        &["-vv", "--json", "get", id, "-o", "creds.bin"],
        &s.dir,
        &creds,
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let (_, _, received, refreshes) = counters(&v);
    assert_eq!((received, refreshes), (300_000, 1), "{v}");
    assert!(
        stderr.contains("wxmedia: token (Credentials"),
        "the fetch: {stderr}"
    );
    assert!(stderr.contains("refreshed"), "the refresh: {stderr}");
    assert_no_secret("-vv with credentials", &stderr);
    assert_eq!(std::fs::read(s.dir.join("creds.bin")).expect("c"), s.media);

    // An upload counts the bytes it sent, and -vv shows its POST.
    let out = wxmedia(
        &s.emu,
        &["-vv", "--json", "upload", "file", "v.bin"],
        &s.dir,
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        v["counters"]["bytes_sent"].as_u64().unwrap_or(0) >= 300_000,
        "{v}"
    );
    assert!(
        stderr.contains("wxmedia: POST cgi-bin/media/upload"),
        "{stderr}"
    );
    assert_no_secret("-vv upload", &stderr);

    // upload-by-url: its submit and its wait are counted together.
    let clip = v["media_id"].as_str().expect("media_id");
    let url = format!("{}/__video/{clip}", s.emu.base_url());
    let out = wxmedia(
        &s.emu,
        &[
            "-vv",
            "--json",
            "upload-by-url",
            "file",
            &url,
            "--local",
            "v.bin",
            "--timeout",
            "30",
        ],
        &s.dir,
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let posts = stderr.matches("wxmedia: POST cgi-bin/media/").count() as u64;
    assert!(posts >= 2, "a submit and a poll at least: {stderr}");
    assert_eq!(v["counters"]["requests"], posts, "{v}: {stderr}");
    assert!(
        stderr.contains("wxmedia: POST cgi-bin/media/upload_by_url:"),
        "{stderr}"
    );
    assert_no_secret("-vv upload-by-url", &stderr);

    // Nothing listening: the error names host:port, and -v shows the
    // retries that used to pass in silence.
    let port = dead_port();
    let dead = format!("http://127.0.0.1:{port}");
    let out = wxmedia(
        &s.emu,
        &[
            "-v",
            "--json",
            "--base-url",
            &dead,
            "get",
            id,
            "-o",
            "n.bin",
        ],
        &s.dir,
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let message = v["message"].as_str().unwrap_or("");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{v}");
    assert_eq!(v["counters"]["retries"], 3, "{v}");
    assert_eq!(stderr.matches("wxmedia: retry").count(), 3, "{stderr}");
}

// `get -o s3://BUCKET/KEY` against a real S3-compatible server (versitygw,
// which checks every signature), through the library's own harness.
#[allow(dead_code)]
#[path = "../../tests/it/support/s3.rs"]
mod s3;

/// For the harness: a fresh directory (versitygw's posix root).
fn tempdir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "wxmedia-cli-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn sha256_hex(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const BIG: &str = "big.bin";
/// Three parts of 5 MiB (the last shorter): a multipart upload.
const BIG_LEN: u32 = 12 * 1024 * 1024 + 4321;

/// An emulator serving `big.bin` and `-dash.bin` from its media dir, and a
/// versitygw with the bucket `media`.
fn s3_setup(tag: &str) -> (Emulator, TempDir, s3::Versitygw, Vec<u8>) {
    let media_dir = TempDir::new(&format!("{tag}-media"));
    let big = pattern(BIG_LEN, 13);
    std::fs::write(media_dir.0.join(BIG), &big).expect("big media");
    std::fs::write(media_dir.0.join(DASH_ID), pattern(5000, 7)).expect("dash media");
    let emu = Emulator::start(Options {
        access_tokens: vec![TOKEN.into()],
        media_dir: Some(media_dir.0.clone()),
        ..Options::default()
    })
    .expect("emulator");
    let gw = s3::Versitygw::start();
    gw.view("media").create_bucket();
    (emu, media_dir, gw, big)
}

/// The command with the store's credentials in the environment (the only
/// place the CLI takes them from) and no other AWS setting inherited.
fn s3_command(emu: &Emulator, args: &[&str], dir: &Path, secret: Option<&str>) -> Command {
    let mut c = command(emu, args, dir, &[]);
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ] {
        c.env_remove(v);
    }
    if let Some(secret) = secret {
        c.env("AWS_ACCESS_KEY_ID", s3::S3_ACCESS)
            .env("AWS_SECRET_ACCESS_KEY", secret);
    }
    c
}

#[test]
fn get_into_object_storage_is_byte_identical_with_counters_and_events() {
    let (emu, media_dir, gw, big) = s3_setup("s3ok");
    let view = gw.view("media");
    let ep = gw.endpoint();
    let out = s3_command(
        &emu,
        &[
            "get",
            BIG,
            "-o",
            "s3://media/in/big.bin",
            "--s3-endpoint",
            &ep,
            "--s3-region",
            s3::S3_REGION,
            "--s3-path-style",
            "--s3-part-size",
            "5M",
            "--parallel",
            "4",
            "--json",
        ],
        &media_dir.0,
        Some(s3::S3_SECRET),
    )
    .output()
    .expect("runs");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["ok"], json!(true), "{v}");
    assert_eq!(v["target"], json!("s3://media/in/big.bin"), "{v}");
    assert_eq!(v["bucket"], json!("media"), "{v}");
    assert_eq!(v["key"], json!("in/big.bin"), "{v}");
    assert_eq!(v["path"], Value::Null, "{v}");
    assert_eq!(v["size"], json!(BIG_LEN), "{v}");
    let c = |k: &str| {
        v["counters"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {v}"))
    };
    // Three ranged GETs from WeChat; create, three parts, complete.
    assert!(c("requests") >= 8, "{v}");
    assert_eq!(c("retries"), 0, "{v}");
    // The parts, and the small XML of CompleteMultipartUpload.
    assert!(c("bytes_sent") >= u64::from(BIG_LEN), "{v}");
    assert!(c("bytes_sent") < u64::from(BIG_LEN) + 64 * 1024, "{v}");
    assert!(c("bytes_received") >= u64::from(BIG_LEN), "{v}");
    assert_eq!(c("resumed_from"), 0, "{v}");
    let obj = view.object("in/big.bin").expect("the object exists");
    assert_eq!(obj.len, u64::from(BIG_LEN));
    assert_eq!(obj.sha256, sha256_hex(&big));
    assert!(view.uploads().is_empty(), "no upload left behind");

    // Under one part: a single PutObject. The endpoint from the
    // environment, plain text output and -vv lines with the method.
    let out = s3_command(
        &emu,
        &["get", "-vv", "-o", "s3://media/small.bin", "--", DASH_ID],
        &media_dir.0,
        Some(s3::S3_SECRET),
    )
    .env("AWS_ENDPOINT_URL", &ep)
    .output()
    .expect("runs");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        stderr.contains("saved 5000 bytes to s3://media/small.bin"),
        "{stderr}"
    );
    assert!(
        stderr.contains("wxmedia: PUT media/small.bin: status 200, 5000 bytes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("wxmedia: GET cgi-bin/media/get"),
        "{stderr}"
    );
    assert_no_secret("-vv to s3", &stderr);
    assert!(!stderr.contains(s3::S3_SECRET), "{stderr}");
    let obj = view.object("small.bin").expect("the small object exists");
    assert_eq!(obj.sha256, sha256_hex(&pattern(5000, 7)));
}

#[test]
fn object_storage_failures_are_clear_fast_and_keep_the_secret() {
    let (emu, media_dir, gw, _) = s3_setup("s3bad");
    let ep = gw.endpoint();
    let wrong = "wrong-secret-9fQ2xZ7kLm";
    // What, the arguments after MEDIA_ID, the secret in the environment,
    // exit status, class, errcode.
    type Case<'a> = (&'a str, &'a [&'a str], Option<&'a str>, i32, &'a str, i64);
    let cases: [Case; 6] = [
        (
            "wrong secret",
            &["-o", "s3://media/k.bin", "--s3-endpoint", &ep],
            Some(wrong),
            2,
            "usage",
            -1016,
        ),
        (
            "missing bucket",
            &["-o", "s3://no-such-bucket/k.bin", "--s3-endpoint", &ep],
            Some(s3::S3_SECRET),
            2,
            "usage",
            -1017,
        ),
        (
            "no credentials",
            &["-o", "s3://media/k.bin", "--s3-endpoint", &ep],
            None,
            2,
            "usage",
            -1001,
        ),
        (
            "no key",
            &["-o", "s3://media", "--s3-endpoint", &ep],
            Some(s3::S3_SECRET),
            2,
            "usage",
            -1001,
        ),
        (
            "s3 option without an s3 target",
            &["-o", "local.bin", "--s3-keep-parts"],
            Some(s3::S3_SECRET),
            2,
            "usage",
            -1001,
        ),
        (
            "part size under 5M",
            &[
                "-o",
                "s3://media/k.bin",
                "--s3-endpoint",
                &ep,
                "--s3-part-size",
                "1M",
            ],
            Some(s3::S3_SECRET),
            2,
            "usage",
            -1001,
        ),
    ];
    for (what, args, secret, exit, class, errcode) in cases {
        let mut all = vec!["get", "--json", BIG];
        all.extend_from_slice(args);
        let started = Instant::now();
        let out = s3_command(&emu, &all, &media_dir.0, secret)
            .output()
            .expect("runs");
        let took = started.elapsed();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(exit), "{what}: {stderr}");
        // Refused credentials are not retried.
        assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
        let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
        assert_eq!(v["ok"], json!(false), "{what}: {v}");
        assert_eq!(v["class"], json!(class), "{what}: {v}");
        assert_eq!(v["errcode"], json!(errcode), "{what}: {v}");
        assert_eq!(v["exit_code"], json!(exit), "{what}: {v}");
        assert!(
            stderr.contains(&format!("wxmedia: errcode {errcode}: ")),
            "{what}: {stderr}"
        );
        for s in [wrong, s3::S3_SECRET] {
            assert!(!stdout.contains(s) && !stderr.contains(s), "{what}: {s}");
        }
        assert_no_secret(what, &stdout);
        assert_no_secret(what, &stderr);
    }
    // The bucket's refusals left nothing: no object, no upload.
    let view = gw.view("media");
    assert!(view.object("k.bin").is_none());
    assert!(view.uploads().is_empty());
    assert!(!media_dir.0.join("local.bin").exists());
}

/// Starts `get BIG -o s3://media/KEY` throttled, and Ctrl-C's it once a
/// part is in the store; returns the run's output.
fn s3_interrupted(emu: &Emulator, dir: &Path, gw: &s3::Versitygw, key: &str, keep: bool) -> Output {
    emu.admin_post(
        "faults",
        &json!({"kind": "throttle", "media_id": BIG, "bytes_per_sec": 4_000_000, "count": 10_000}),
    )
    .expect("throttle");
    let target = format!("s3://media/{key}");
    let ep = gw.endpoint();
    let mut args = vec!["--json", "get", BIG, "-o", &target, "--s3-endpoint", &ep];
    args.extend(["--s3-part-size", "5M"]);
    if keep {
        args.push("--s3-keep-parts");
    }
    let mut child = s3_command(emu, &args, dir, Some(s3::S3_SECRET))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let view = gw.view("media");
    let deadline = Instant::now() + Duration::from_secs(30);
    'parts: loop {
        for id in view.uploads() {
            if view.parts(key, &id).iter().any(|p| p.0 < 10_000) {
                break 'parts;
            }
        }
        assert!(Instant::now() < deadline, "no part was ever uploaded");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill() with a child's pid and SIGINT has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let sent = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(sent.elapsed() < Duration::from_secs(10), "Ctrl-C not seen");
        std::thread::sleep(Duration::from_millis(20));
    }
    emu.admin_post("reset", &json!({})).expect("reset");
    child.wait_with_output().expect("output")
}

#[test]
fn ctrl_c_aborts_the_upload_or_keeps_its_parts_for_the_next_run() {
    let (emu, media_dir, gw, big) = s3_setup("s3int");
    let view = gw.view("media");
    // Without --s3-keep-parts: cancelled, and nothing left in the bucket.
    let out = s3_interrupted(&emu, &media_dir.0, &gw, "aborted.bin", false);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["class"], json!("cancelled"), "{v}");
    assert!(view.uploads().is_empty(), "the upload was aborted");
    assert!(view.object("aborted.bin").is_none());

    // With it: the parts stay, and the same command resumes them.
    let out = s3_interrupted(&emu, &media_dir.0, &gw, "kept.bin", true);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert_eq!(view.uploads().len(), 1, "the upload is kept");
    let ep = gw.endpoint();
    let out = s3_command(
        &emu,
        &["--json", "get", BIG, "-o", "s3://media/kept.bin"],
        &media_dir.0,
        Some(s3::S3_SECRET),
    )
    .args(["--s3-endpoint", &ep, "--s3-part-size", "5M"])
    .output()
    .expect("runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let resumed = v["counters"]["resumed_from"]
        .as_u64()
        .expect("resumed_from");
    assert!(resumed >= 5 * 1024 * 1024, "{v}");
    let received = v["counters"]["bytes_received"].as_u64().expect("received");
    assert!(
        received < u64::from(BIG_LEN),
        "fetched only what was missing: {v}"
    );
    assert_eq!(
        view.object("kept.bin").expect("object").sha256,
        sha256_hex(&big)
    );
    assert!(view.uploads().is_empty());
}
