//! Chaos: seeded, reproducible download and upload runs against the
//! emulator with random faults (resets at random byte offsets, stalls, -1,
//! 45033, 5xx, token expiry and rejection, wrong Content-Range, short
//! bodies, ignored Range, slow headers, token-endpoint failures), random
//! sizes (encrypted media, non-multiples of 16, empty), chunk sizes
//! (multiples of 16), parallelism, sinks with start offsets and to_path.
//!
//! Every run must end byte-identical (sha256) or with a clear errcode and
//! nothing at the target path; a failed to_path must then resume to an
//! identical file; no message may hold the token or the secret.
//!
//!   WXMEDIA_CHAOS_RUNS   number of runs (default 60)
//!   WXMEDIA_CHAOS_SEED   base seed (default below); run i uses seed + i.
//!   To replay one run: WXMEDIA_CHAOS_SEED=<its seed> WXMEDIA_CHAOS_RUNS=1.

use crate::support::{
    self, add_media, admin, fault, sha256_hex, ClientOpts, Emulator, Options, Platform, Rng,
    CORPID, SECRET, TOKEN,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Instant;
use wxmedia::error::*;

const DEFAULT_SEED: u64 = 0x0C4A_0500_2026;

/// Codes a run may end with besides 0: transient failures after the
/// retries ran out, and WeChat's own answers that are final.
const CLEAR_CODES: &[i32] = &[
    WXM_E_NETWORK,
    WXM_E_TIMEOUT,
    WXM_E_PROTOCOL,
    WXM_E_HTTP_STATUS,
    -1,
    45033,
    40001,
    40014,
    42001,
];

struct World {
    wecom: Emulator,
    official: Emulator,
    dir: std::path::PathBuf,
}

#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<String, usize>,
    violations: Vec<String>,
    faults: BTreeMap<String, usize>,
}

impl Tally {
    fn count(&mut self, outcome: String) {
        *self.outcomes.entry(outcome).or_default() += 1;
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[test]
fn chaos() {
    let runs = env_u64("WXMEDIA_CHAOS_RUNS").unwrap_or(60);
    let base = env_u64("WXMEDIA_CHAOS_SEED").unwrap_or(DEFAULT_SEED);
    let start = |platform| {
        Emulator::start(Options {
            platform,
            access_tokens: vec![TOKEN.to_string()],
            ..Options::default()
        })
        .expect("emulator starts")
    };
    let world = World {
        wecom: start(Platform::WeCom),
        official: start(Platform::Official),
        dir: std::env::temp_dir().join(format!("wxmedia-chaos-{}", std::process::id())),
    };
    std::fs::create_dir_all(&world.dir).expect("chaos dir");
    let mut tally = Tally::default();
    let t0 = Instant::now();
    for i in 0..runs {
        let seed = base.wrapping_add(i);
        let t = Instant::now();
        let what = run_one(&world, seed, &mut tally);
        if std::env::var_os("WXMEDIA_CHAOS_VERBOSE").is_some() {
            eprintln!(
                "run {i} seed {seed:#x} ({} ms): {what}",
                t.elapsed().as_millis()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&world.dir);
    eprintln!(
        "\nchaos: {runs} runs, base seed {base:#x}, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    eprintln!("outcomes:");
    for (k, v) in &tally.outcomes {
        eprintln!("  {v:5}  {k}");
    }
    eprintln!("faults injected:");
    for (k, v) in &tally.faults {
        eprintln!("  {v:5}  {k}");
    }
    let corrupt = tally.violations.len();
    eprintln!("corrupt or unclear results: {corrupt}");
    for v in &tally.violations {
        eprintln!("  VIOLATION {v}");
    }
    assert!(
        tally.violations.is_empty(),
        "{corrupt} violations (replay one with WXMEDIA_CHAOS_SEED=<seed> WXMEDIA_CHAOS_RUNS=1)"
    );
    assert_eq!(
        tally.outcomes.values().sum::<usize>() as u64,
        runs,
        "every run has an outcome"
    );
}

/// One random fault, as the emulator's admin API takes it.
fn random_fault(
    r: &mut Rng,
    media_id: &str,
    endpoint: &str,
    size: u64,
    credentials: bool,
) -> serde_json::Value {
    let count = r.range(1, 3);
    let after = r.range(0, size.max(1));
    let f = match r.range(0, 13) {
        0 | 1 => json!({"kind": "reset", "after_bytes": after}),
        2 => json!({"kind": "stall", "after_bytes": after, "ms": r.range(50, 1600)}),
        3 => json!({"kind": "errcode", "errcode": -1}),
        4 => json!({"kind": "errcode", "errcode": 45033}),
        5 => json!({"kind": "http_status", "status": *r.pick(&[500u64, 502, 503])}),
        6 => json!({"kind": "token_expire", "after_bytes": after}),
        7 => json!({"kind": "wrong_content_range"}),
        8 => json!({"kind": "short_body", "after_bytes": r.range(1, size.max(2))}),
        9 => json!({"kind": "ignore_range"}),
        10 => json!({"kind": "slow_headers", "ms": r.range(50, 1300)}),
        11 => json!({"kind": "errcode", "errcode": *r.pick(&[40001i64, 42001])}),
        _ => {
            // The token endpoint fails (only matters with credentials).
            let mut f = if r.chance(50) {
                json!({"kind": "errcode", "errcode": -1})
            } else {
                json!({"kind": "http_status", "status": 503})
            };
            let _ = credentials;
            f["endpoint"] = json!("gettoken");
            f["count"] = json!(1);
            return f;
        }
    };
    let mut f = f;
    f["count"] = json!(count);
    f["endpoint"] = json!(endpoint);
    f["media_id"] = json!(media_id);
    f
}

fn describe(f: &serde_json::Value) -> String {
    let kind = f["kind"].as_str().unwrap_or("?");
    match kind {
        "errcode" => format!("errcode {}", f["errcode"]),
        "http_status" => format!("http {}", f["status"]),
        k => k.to_string(),
    }
}

/// The token the emulator hands out for the test credentials right now.
fn current_issued_token(emu: &Emulator) -> Option<String> {
    let v = admin(
        emu,
        "GET",
        &format!("/cgi-bin/gettoken?corpid={CORPID}&corpsecret={SECRET}"),
        serde_json::Value::Null,
    );
    v["access_token"].as_str().map(str::to_string)
}

fn run_one(w: &World, seed: u64, tally: &mut Tally) -> String {
    let mut r = Rng(seed);
    if r.chance(25) {
        upload_run(w, seed, &mut r, tally)
    } else {
        download_run(w, seed, &mut r, tally)
    }
}

fn download_run(w: &World, seed: u64, r: &mut Rng, tally: &mut Tally) -> String {
    let video = r.chance(12);
    let emu = if video { &w.official } else { &w.wecom };
    admin(emu, "POST", "/__admin/reset", json!({}));
    admin(emu, "POST", "/__admin/tokens", json!({"token": TOKEN}));
    let size = match r.range(0, 99) {
        0..=2 => r.range(0, 16),
        3..=14 => r.range(17, 4096),
        15..=59 => r.range(4097, 200_000),
        60..=89 => r.range(200_001, 900_000),
        _ => r.range(900_001, 2_500_000),
    };
    let encrypted = !video && r.chance(40);
    let media_id = format!("chaos-{seed:x}");
    let mut spec =
        json!({"media_id": media_id, "size": size, "seed": seed, "encrypted": encrypted});
    if video {
        spec["video"] = json!(true);
        spec["kind"] = json!("video");
        spec["filename"] = json!(format!("{media_id}.mp4"));
    }
    let (id, want) = add_media(emu, spec);
    // Chunks: a multiple of 16, at least size/150 so a run stays short.
    let min_chunk = (size / 150).div_ceil(16).max(1) * 16;
    let chunk = if r.chance(5) {
        20 * 1024 * 1024
    } else {
        (16 * r.range(1, 8192)).max(min_chunk)
    };
    let parallelism = *r.pick(&[1u32, 1, 2, 3, 4, 6]);
    let credentials = r.chance(70);
    let attempts = r.range(2, 6) as u32;
    let io_ms = r.range(700, 1500) as u32;
    let to_path = r.chance(50);
    let start = if !to_path && r.chance(25) {
        r.range(0, size)
    } else {
        0
    };
    let endpoint = if video { "video" } else { "media/get" };
    // The token the emulator issues for the credentials, learnt before any
    // fault is queued (and again after the run, in `check_secrets`).
    let issued_before = current_issued_token(emu);
    let nfaults = r.range(0, 4);
    let mut fault_names = Vec::new();
    for _ in 0..nfaults {
        let f = random_fault(r, &id, endpoint, size, credentials);
        fault_names.push(describe(&f));
        *tally.faults.entry(describe(&f)).or_default() += 1;
        fault(emu, f);
    }
    let mut o = ClientOpts::at(&emu.base_url());
    o.token = (!credentials).then(|| TOKEN.to_string());
    o.credentials = credentials.then(|| (CORPID.to_string(), SECRET.to_string()));
    o.chunk = chunk;
    o.parallelism = parallelism;
    o.io_ms = io_ms;
    o.attempts = attempts;
    o.backoff_ms = r.range(1, 20) as u32;
    let c = support::new_client(&o);
    let what = format!(
        "seed {seed:#x}: download {size} B{}{} chunk {chunk} ×{parallelism} {} start {start} \
         {} attempts {attempts} io {io_ms} ms faults [{}]",
        if encrypted { " encrypted" } else { "" },
        if video { " video_url" } else { "" },
        if to_path { "to_path" } else { "sink" },
        if credentials {
            "credentials"
        } else {
            "static token"
        },
        fault_names.join(", ")
    );
    let mut messages: Vec<String> = Vec::new();
    let violation = |tally: &mut Tally, why: String| {
        tally.violations.push(format!("{what}: {why}"));
    };
    let mut check_msgs = |_: &mut Tally, o: &support::Got| {
        messages.push(o.errmsg.clone());
        messages.push(o.last_errmsg.clone());
    };
    let want_sha = sha256_hex(&want[start as usize..]);
    let outcome;
    if to_path {
        let dir = w.dir.join(format!("{seed:x}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let target = dir.join(format!("media-{seed:x}.bin"));
        let got = support::download_path(&c, &id, &target);
        check_msgs(tally, &got);
        if got.rc == 0 {
            let file = std::fs::read(&target).unwrap_or_default();
            if sha256_hex(&file) != want_sha {
                violation(
                    tally,
                    format!("CORRUPT: {} bytes, wanted {}", file.len(), want.len()),
                );
            }
            if got.size != size {
                violation(
                    tally,
                    format!("size {} reported, media has {size}", got.size),
                );
            }
            let entries = support::dir_entries(&dir);
            if entries.len() != 1 {
                violation(tally, format!("debris beside the target: {entries:?}"));
            }
            outcome = "download ok".to_string();
        } else {
            if !CLEAR_CODES.contains(&got.rc) {
                violation(tally, format!("unclear code {} ({})", got.rc, got.errmsg));
            }
            if got.errmsg.is_empty() {
                violation(tally, format!("code {} without a message", got.rc));
            }
            if target.exists() {
                violation(tally, "a failed download left a file at the target".into());
            }
            // The same download again, without faults, resumes from what the
            // failed one left and must give the identical file.
            admin(emu, "POST", "/__admin/reset", json!({}));
            admin(emu, "POST", "/__admin/tokens", json!({"token": TOKEN}));
            let again = support::download_path(&c, &id, &target);
            check_msgs(tally, &again);
            let file = std::fs::read(&target).unwrap_or_default();
            if again.rc != 0 {
                violation(
                    tally,
                    format!("resume failed: {} {}", again.rc, again.errmsg),
                );
            } else if sha256_hex(&file) != want_sha {
                violation(tally, format!("CORRUPT after resume: {} bytes", file.len()));
            }
            outcome = format!("download failed {} then resumed ok", got.rc);
        }
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        let got = support::download_sink(&c, &id, start);
        check_msgs(tally, &got);
        let expected = &want[start as usize..];
        if !got.in_order {
            violation(tally, "sink offsets out of order".into());
        }
        if got.rc == 0 {
            if sha256_hex(&got.data) != want_sha {
                violation(
                    tally,
                    format!(
                        "CORRUPT: {} bytes, wanted {}",
                        got.data.len(),
                        expected.len()
                    ),
                );
            }
            if got.size != size {
                violation(
                    tally,
                    format!("size {} reported, media has {size}", got.size),
                );
            }
            outcome = "download ok".to_string();
        } else {
            if !CLEAR_CODES.contains(&got.rc) {
                violation(tally, format!("unclear code {} ({})", got.rc, got.errmsg));
            }
            if !expected.starts_with(&got.data) {
                violation(
                    tally,
                    "the sink received wrong bytes before the failure".into(),
                );
            }
            outcome = format!("download failed {}", got.rc);
        }
    }
    check_secrets(emu, &what, &messages, issued_before, tally);
    tally.count(outcome.clone());
    format!("{what} -> {outcome}")
}

/// No message shows the static token, the secret, or a token the emulator
/// issued for the credentials (before the run, or now).
fn check_secrets(
    emu: &Emulator,
    what: &str,
    messages: &[String],
    issued_before: Option<String>,
    tally: &mut Tally,
) {
    admin(emu, "POST", "/__admin/reset", json!({}));
    let mut secrets = vec![TOKEN.to_string(), SECRET.to_string()];
    secrets.extend(issued_before);
    secrets.extend(current_issued_token(emu));
    for m in messages {
        for s in &secrets {
            if m.contains(s.as_str()) {
                tally
                    .violations
                    .push(format!("{what}: message leaks a secret: {m:?}"));
            }
        }
    }
}

fn upload_run(w: &World, seed: u64, r: &mut Rng, tally: &mut Tally) -> String {
    let emu = &w.wecom;
    admin(emu, "POST", "/__admin/reset", json!({}));
    admin(emu, "POST", "/__admin/tokens", json!({"token": TOKEN}));
    let image = r.chance(40);
    let size = match r.range(0, 9) {
        0..=2 => r.range(6, 4096),
        3..=7 => r.range(4097, 300_000),
        _ => r.range(300_001, 1_500_000),
    } as usize;
    let head: &[u8] = if image { support::JPEG_HEAD } else { b"" };
    let data = support::media_bytes(head, size.max(head.len() + 1), seed);
    let kind = if image { "image" } else { "file" };
    let credentials = r.chance(70);
    let from_reader = r.chance(40);
    let attempts = r.range(2, 6) as u32;
    let issued_before = current_issued_token(emu);
    let nfaults = r.range(0, 3);
    let mut fault_names = Vec::new();
    for _ in 0..nfaults {
        let after = r.range(0, 200);
        let f = match r.range(0, 7) {
            0 => json!({"kind": "errcode", "errcode": -1}),
            1 => json!({"kind": "errcode", "errcode": 45033}),
            2 => json!({"kind": "http_status", "status": *r.pick(&[500u64, 502, 503])}),
            3 => json!({"kind": "reset", "after_bytes": after}),
            4 => json!({"kind": "slow_headers", "ms": r.range(50, 1300)}),
            5 => json!({"kind": "stall", "after_bytes": after.min(20), "ms": r.range(50, 1600)}),
            6 => json!({"kind": "errcode", "errcode": *r.pick(&[40001i64, 42001])}),
            _ => json!({"kind": "token_expire", "after_bytes": 0}),
        };
        let mut f = f;
        f["endpoint"] = json!("media/upload");
        f["count"] = json!(r.range(1, 2));
        fault_names.push(describe(&f));
        *tally
            .faults
            .entry(format!("upload {}", describe(&f)))
            .or_default() += 1;
        fault(emu, f);
    }
    let c = support::client(
        emu,
        support::ClientOpts {
            token: (!credentials).then(|| TOKEN.to_string()),
            credentials: credentials.then(|| (CORPID.to_string(), SECRET.to_string())),
            io_ms: r.range(700, 1500) as u32,
            attempts,
            backoff_ms: r.range(1, 20) as u32,
            ..Default::default()
        },
    );
    let what = format!(
        "seed {seed:#x}: upload {kind} {} B from {} {} attempts {attempts} faults [{}]",
        data.len(),
        if from_reader { "reader" } else { "path" },
        if credentials {
            "credentials"
        } else {
            "static token"
        },
        fault_names.join(", ")
    );
    let up = if from_reader {
        support::upload_reader(&c, kind, &data, data.len() as u64, Some("chaos.bin"), None)
    } else {
        let dir = w.dir.join(format!("up-{seed:x}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join(if image { "chaos.jpg" } else { "chaos.bin" });
        std::fs::write(&p, &data).expect("write");
        let up = support::upload_path(&c, kind, &p, None);
        let _ = std::fs::remove_dir_all(&dir);
        up
    };
    let last = support::last_errmsg();
    check_secrets(emu, &what, &[up.errmsg.clone(), last], issued_before, tally);
    let outcome = if up.rc == 0 {
        match &up.media_id {
            Some(mid) => {
                let stored = admin(emu, "GET", &format!("/__admin/media/{mid}"), json!(null));
                if stored["sha256"].as_str() != Some(sha256_hex(&data).as_str())
                    || stored["size"].as_u64() != Some(data.len() as u64)
                {
                    tally
                        .violations
                        .push(format!("{what}: CORRUPT upload: stored {stored}"));
                }
            }
            None => tally
                .violations
                .push(format!("{what}: success without a media_id")),
        }
        "upload ok".to_string()
    } else {
        if !CLEAR_CODES.contains(&up.rc) {
            tally
                .violations
                .push(format!("{what}: unclear code {} ({})", up.rc, up.errmsg));
        }
        if up.media_id.is_some() {
            tally
                .violations
                .push(format!("{what}: a media_id after a failure"));
        }
        format!("upload failed {}", up.rc)
    };
    tally.count(outcome.clone());
    format!("{what} -> {outcome}")
}
