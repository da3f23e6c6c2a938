//! A host process killed (SIGKILL) in the middle of `wxm_download_to_path`,
//! and a power-cut-like truncation of its temporary file: a new process
//! completes the same download from what was left, fetching less than the
//! whole file (the emulator's recorded ranges prove it), with an identical
//! result.
//!
//! Media under 4 MiB write their resume record only when a transfer fails
//! in-process, so a killed one starts again from byte 0 (still correct).
//!
//! The host is this test binary re-executed as a child: `host_child` does
//! the download when WXM_KILL_CHILD is set, and nothing otherwise.

use crate::support::{
    self, add_media, admin, fault, ranges, sha256_hex, start, ClientOpts, Platform, TOKEN,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The child side: download WXM_KILL_MEDIA from WXM_KILL_BASE to
/// WXM_KILL_TARGET, exit 0 on success, 3 with the code on stderr otherwise.
#[test]
fn host_child() {
    let Ok(base) = std::env::var("WXM_KILL_CHILD") else {
        return;
    };
    let media = std::env::var("WXM_KILL_MEDIA").expect("media");
    let target = PathBuf::from(std::env::var("WXM_KILL_TARGET").expect("target"));
    let parallelism: u32 = std::env::var("WXM_KILL_PARALLEL")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let c = support::new_client(&ClientOpts {
        token: Some(TOKEN.to_string()),
        chunk: 64 * 1024,
        parallelism,
        io_ms: 20_000,
        attempts: 3,
        ..ClientOpts::at(&base)
    });
    let o = support::download_path(&c, &media, &target);
    if o.rc != 0 {
        eprintln!("child: rc {} {}", o.rc, o.errmsg);
        std::process::exit(3);
    }
    // A success may carry a note (a part file downloaded again).
    eprint!("{}", o.errmsg);
    std::process::exit(0);
}

fn spawn_child(base: &str, media: &str, target: &Path, parallelism: u32) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            &support::test_name(module_path!(), "host_child"),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WXM_KILL_CHILD", base)
        .env("WXM_KILL_MEDIA", media)
        .env("WXM_KILL_TARGET", target)
        .env("WXM_KILL_PARALLEL", parallelism.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the host child")
}

/// Waits for a child that must succeed; returns what it printed on stderr.
fn wait_ok(mut child: Child, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            assert!(status.success(), "{what}: child {status}: {err}");
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: child did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a throttled download in a child and SIGKILLs it once its
/// temporary file holds at least `at_least` bytes. Returns that length.
fn kill_midway(
    emu: &support::Emulator,
    id: &str,
    target: &Path,
    parallelism: u32,
    at_least: u64,
) -> u64 {
    // The throttle lets the first 1/20 s of a body through at once: at this
    // rate that is half of a child's 64 KiB chunk, so every chunk waits.
    fault(
        emu,
        json!({"kind": "throttle", "media_id": id, "bytes_per_sec": 640_000, "count": 10_000}),
    );
    let (part, _) = wxmedia::download::part_paths(target);
    let mut child = spawn_child(&emu.base_url(), id, target, parallelism);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if have >= at_least {
            break;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the child ended ({status}) before it could be killed");
        }
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Child::kill is SIGKILL on Unix: no destructor, no flush, no cleanup.
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reap");
    assert!(!status.success());
    assert!(
        !target.exists(),
        "a killed download must not create the target"
    );
    std::fs::metadata(&part).expect("the part file stays").len()
}

fn fetched(emu: &support::Emulator, id: &str) -> (u64, u64) {
    let r = ranges(emu, id);
    assert!(!r.is_empty(), "no Range request recorded");
    let total = r.iter().map(|(s, e)| e - s + 1).sum();
    let first = r.iter().map(|(s, _)| *s).min().unwrap_or(0);
    (total, first)
}

/// Adds a media of `size` bytes, kills a child downloading it midway, then
/// lets a new child finish and checks the result. Returns what the kill left
/// on disk and the emulator's (bytes refetched, lowest offset) afterwards.
fn kill_then_finish(
    emu: &support::Emulator,
    size: u64,
    seed: u32,
    parallelism: u32,
) -> (u64, u64, u64) {
    let (id, want) = add_media(emu, json!({"size": size, "seed": seed, "encrypted": true}));
    let dir = support::tempdir("kill");
    let target = dir.join("media.bin");
    let have = kill_midway(emu, &id, &target, parallelism, 600_000);
    assert!(have < size, "killed too late: {have}");
    admin(emu, "POST", "/__admin/reset", json!({}));
    wait_ok(
        spawn_child(&emu.base_url(), &id, &target, parallelism),
        "second child",
    );
    let got = std::fs::read(&target).expect("target");
    assert_eq!(
        sha256_hex(&got),
        sha256_hex(&want),
        "parallelism {parallelism}"
    );
    let (part, meta) = wxmedia::download::part_paths(&target);
    assert!(!part.exists() && !meta.exists(), "temporary files left");
    let _ = std::fs::remove_dir_all(dir);
    let (total, first) = fetched(emu, &id);
    (have, total, first)
}

#[test]
fn a_killed_host_resumes_in_a_new_process() {
    let emu = start(Platform::WeCom);
    let size = 5 * 1024 * 1024 + 5;
    for parallelism in [1u32, 3] {
        let (have, total, first) = kill_then_finish(&emu, size, 40 + parallelism, parallelism);
        assert!(
            total < size && first > 0,
            "parallelism {parallelism}: refetched {total} of {size} bytes from {first} ({have} on disk)"
        );
    }
}

#[test]
fn a_killed_small_download_starts_again_cleanly() {
    let emu = start(Platform::WeCom);
    let size = 2 * 1024 * 1024 + 9;
    for parallelism in [1u32, 3] {
        let (_, _, first) = kill_then_finish(&emu, size, 60 + parallelism, parallelism);
        if parallelism == 1 {
            // No record was written: nothing vouched for the bytes on disk.
            assert_eq!(first, 0, "a small in-order download restarts from 0");
        }
    }
}

#[test]
fn a_power_cut_truncated_part_file_resumes_correctly() {
    let emu = start(Platform::WeCom);
    let size = 5 * 1024 * 1024 + 3;
    let (id, want) = add_media(&emu, json!({"size": size, "seed": 77, "encrypted": true}));
    let dir = support::tempdir("powercut");
    let target = dir.join("media.bin");
    let (part, meta) = wxmedia::download::part_paths(&target);
    let have = kill_midway(&emu, &id, &target, 1, 700_000);
    // As if the last writes never reached the disk: the file is cut back
    // to an odd length, mid-block.
    let cut = have / 2 + 7;
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta).expect("record")).expect("record JSON");
    let durable = record["complete"]
        .as_u64()
        .expect("a synced prefix is recorded");
    // Synced and recorded at least once per 64 KiB chunk: at most one
    // chunk and one write (a read buffer) behind what reached the file.
    assert!(
        durable <= have && have - durable < (64 + 256) * 1024,
        "recorded {durable} of {have} bytes on disk"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&part)
        .and_then(|f| f.set_len(cut))
        .expect("truncate");
    admin(&emu, "POST", "/__admin/reset", json!({}));
    wait_ok(
        spawn_child(&emu.base_url(), &id, &target, 1),
        "after power cut",
    );
    assert_eq!(
        sha256_hex(&std::fs::read(&target).expect("target")),
        sha256_hex(&want)
    );
    let (total, first) = fetched(&emu, &id);
    assert_eq!(
        first,
        cut.min(durable)
            .saturating_sub(wxmedia::download::RESUME_OVERLAP)
            / 16
            * 16,
        "resumed where it proves the kept prefix: the overlap before what survived"
    );
    assert!(total <= size - first, "refetched {total}");
    assert!(!part.exists() && !meta.exists());

    // A resume record torn by the power cut (half-written JSON), and a part
    // file longer than the media: both are discarded, never trusted.
    for (record, part_len) in [
        (b"{\"media_id\":\"".to_vec(), 1000u64),
        (
            json!({"media_id": id, "endpoint": "Media", "size": size})
                .to_string()
                .into_bytes(),
            size + 100,
        ),
        (Vec::new(), 5000),
    ] {
        let _ = std::fs::remove_file(&target);
        std::fs::write(&part, vec![0xAB; part_len as usize]).expect("part");
        std::fs::write(&meta, &record).expect("meta");
        admin(&emu, "POST", "/__admin/reset", json!({}));
        wait_ok(spawn_child(&emu.base_url(), &id, &target, 1), "torn record");
        assert_eq!(
            sha256_hex(&std::fs::read(&target).expect("target")),
            sha256_hex(&want),
            "record {:?}",
            String::from_utf8_lossy(&record)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// How a crash (or a careless hand) can leave a part file.
#[derive(Debug, Clone, Copy)]
enum Damage {
    GarbageAppended,
    ZerosAppended,
    LastMibOverwritten,
    TruncatedMidChunk,
    AnotherMediaOfTheSameSize,
}

#[test]
fn a_damaged_part_file_never_yields_a_wrong_byte() {
    let emu = start(Platform::WeCom);
    let size: u64 = 5 * 1024 * 1024 + 3;
    let (other_id, other) = add_media(&emu, json!({"size": size, "seed": 901, "encrypted": true}));
    assert_ne!(other_id, "");
    for (n, damage) in [
        Damage::GarbageAppended,
        Damage::ZerosAppended,
        Damage::LastMibOverwritten,
        Damage::TruncatedMidChunk,
        Damage::AnotherMediaOfTheSameSize,
    ]
    .into_iter()
    .enumerate()
    {
        for parallelism in [1u32, 3] {
            let case = format!("{damage:?}, parallelism {parallelism}");
            let seed = 500 + n as u32 * 10 + parallelism;
            let (id, want) =
                add_media(&emu, json!({"size": size, "seed": seed, "encrypted": true}));
            let dir = support::tempdir("damage");
            let target = dir.join("media.bin");
            let (part, meta) = wxmedia::download::part_paths(&target);
            let have = kill_midway(&emu, &id, &target, parallelism, 900_000) as usize;
            let mut bytes = std::fs::read(&part).expect("part file");
            match damage {
                Damage::GarbageAppended => bytes
                    .extend((0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)),
                Damage::ZerosAppended => bytes.extend(std::iter::repeat_n(0u8, 1 << 20)),
                Damage::LastMibOverwritten => {
                    let from = have.saturating_sub(1 << 20);
                    for (i, b) in bytes[from..].iter_mut().enumerate() {
                        *b = (i % 251) as u8 ^ 0x5A;
                    }
                }
                Damage::TruncatedMidChunk => bytes.truncate(have / 2 + 7),
                Damage::AnotherMediaOfTheSameSize => {
                    bytes.copy_from_slice(&other[..have]);
                }
            }
            std::fs::write(&part, &bytes).expect("damage the part file");
            admin(&emu, "POST", "/__admin/reset", json!({}));
            let note = wait_ok(
                spawn_child(&emu.base_url(), &id, &target, parallelism),
                &case,
            );
            let got = std::fs::read(&target).expect("target");
            assert_eq!(sha256_hex(&got), sha256_hex(&want), "{case}: wrong bytes");
            assert!(
                !part.exists() && !meta.exists(),
                "{case}: temporary files left"
            );
            let (_, first) = fetched(&emu, &id);
            match damage {
                // The kept bytes failed their check: downloaded again, and said so.
                Damage::AnotherMediaOfTheSameSize => {
                    assert!(note.contains("differed"), "{case}: note {note:?}");
                }
                Damage::LastMibOverwritten if parallelism == 1 => {
                    assert!(note.contains("differed"), "{case}: note {note:?}");
                }
                // Bytes past the synced prefix are cut off; the prefix stays.
                Damage::GarbageAppended | Damage::ZerosAppended => {
                    assert!(note.is_empty(), "{case}: note {note:?}");
                    assert!(first > 0, "{case}: restarted from 0");
                }
                _ => {}
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
