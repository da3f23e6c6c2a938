//! `to_path` and the faults of its file and connection: bytes cut mid-body,
//! a stall, a cancel, parallel workers at their offsets, a file that
//! refuses bytes. The file ends byte-identical or the call fails cleanly and
//! the next one resumes. (These once held the plain-http splice path to what
//! reads guarantee; that path is gone, the guarantees stay.)
//!
//! They run one at a time (`SERIAL`): one lowers the file-size limit.

use crate::support::*;
use serde_json::json;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use wxmedia::error::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn big_chunks(emu: &Emulator, more: ClientOpts) -> TestClient {
    client(
        emu,
        ClientOpts {
            chunk: 1024 * 1024,
            ..more
        },
    )
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// A `to_path` download that succeeds and leaves exactly `want` on disk.
#[track_caller]
fn downloads_intact(c: &TestClient, id: &str, target: &Path, want: &[u8]) {
    let Got {
        rc, errmsg: msg, ..
    } = download_path(c, id, target);
    assert_eq!(rc, 0, "{msg}");
    assert!(read(target) == want, "content differs");
}

#[test]
fn downloads_reuse_one_connection() {
    let _one = serial();
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 3 * 1024 * 1024 + 5, "seed": 31}));
    let c = big_chunks(&emu, ClientOpts::default());
    let dir = tempdir("file-rounds");
    for round in 0..3 {
        let target = dir.join(format!("r{round}.bin"));
        let Got {
            rc, errmsg: msg, ..
        } = download_path(&c, &id, &target);
        assert_eq!(rc, 0, "{msg}");
        assert!(read(&target) == want, "round {round}: file differs");
    }
    assert_eq!(stats(&emu)["connections_opened"].as_u64(), Some(1));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_connection_cut_mid_body_resumes_with_the_right_bytes() {
    let _one = serial();
    let emu = start(Platform::WeCom);
    let (c, id, want) = media_cut_mid_body(&emu, 32);
    let dir = tempdir("file-cut");
    let target = dir.join("cut.bin");
    downloads_intact(&c, &id, &target, &want);
    let s = stats(&emu);
    assert_eq!(s["faults_fired"].as_u64(), Some(1), "{s}");
    // The retry asked only for what the file did not have.
    let asked = ranges(&emu, &id);
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked[1].0 >= 1024 * 1024 - 64 * 1024, "{asked:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_stall_mid_body_times_out_and_the_next_call_resumes() {
    let _one = serial();
    let emu = start(Platform::WeCom);
    let size = 2 * 1024 * 1024u64;
    let (id, want) = add_media(&emu, json!({"size": size, "seed": 33}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: size,
            io_ms: 400,
            attempts: 1,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "stall", "after_bytes": 1536 * 1024, "ms": 5000, "media_id": id, "count": 1}),
    );
    let dir = tempdir("file-stall");
    let target = dir.join("stall.bin");
    let t0 = Instant::now();
    let Got {
        rc, errmsg: msg, ..
    } = download_path(&c, &id, &target);
    assert_eq!(rc, WXM_E_TIMEOUT, "{msg}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(!target.exists());
    reset(&emu);
    downloads_intact(&c, &id, &target, &want);
    // It went on from the bytes the file had before the stall.
    let asked = ranges(&emu, &id);
    assert!(asked.iter().all(|&(s, _)| s >= 1024 * 1024), "{asked:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_cancel_mid_body_is_prompt_and_loses_nothing() {
    let _one = serial();
    let emu = start(Platform::WeCom);
    let size = 4 * 1024 * 1024u64;
    let (id, want) = add_media(&emu, json!({"size": size, "seed": 34}));
    let c = big_chunks(&emu, ClientOpts::default());
    fault(
        &emu,
        json!({"kind": "throttle", "media_id": id, "bytes_per_sec": 2_000_000, "count": 100}),
    );
    let dir = tempdir("file-cancel");
    let target = dir.join("cancel.bin");
    let (rc, took) = to_path_cancelled_after(&c, &id, &target, 600);
    assert_eq!(rc, WXM_E_CANCELLED);
    assert!(
        took < Duration::from_secs(1),
        "returned {took:?} after the cancel"
    );
    reset(&emu);
    downloads_intact(&c, &id, &target, &want);
    let fetched: u64 = ranges(&emu, &id).iter().map(|(s, e)| e - s + 1).sum();
    assert!(fetched < size, "the second call resumed: fetched {fetched}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn parallel_workers_write_at_their_offsets() {
    let _one = serial();
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 6 * 1024 * 1024 + 7, "seed": 35}));
    let c = big_chunks(
        &emu,
        ClientOpts {
            parallelism: 4,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "reset", "media_id": id, "after_bytes": 300_001, "count": 3}),
    );
    let dir = tempdir("file-parallel");
    let target = dir.join("p.bin");
    downloads_intact(&c, &id, &target, &want);
    assert_eq!(stats(&emu)["faults_fired"].as_u64(), Some(3));
    let _ = std::fs::remove_dir_all(dir);
}

/// Sets this process's file-size limit (None: back to what it was).
struct FileSizeLimit(libc::rlimit);

impl FileSizeLimit {
    fn lower_to(bytes: u64) -> FileSizeLimit {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain getrlimit/setrlimit/signal calls with valid arguments.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut old), 0);
            // Past the limit a write fails with EFBIG instead of killing us.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let new = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: old.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &new), 0);
        }
        FileSizeLimit(old)
    }
}

impl Drop for FileSizeLimit {
    fn drop(&mut self) {
        // SAFETY: restores the limit read in lower_to.
        unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &self.0) };
    }
}

/// A file that cannot take the bytes fails the call with an io error, and
/// nothing of it reaches the next file.
#[test]
fn a_file_that_refuses_bytes_fails_cleanly_and_the_next_download_is_whole() {
    let _one = serial();
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 3 * 1024 * 1024, "seed": 36}));
    let (other, other_want) = add_media(&emu, json!({"size": 2 * 1024 * 1024 + 9, "seed": 37}));
    let c = big_chunks(&emu, ClientOpts::default());
    let dir = tempdir("file-efbig");
    let target = dir.join("big.bin");
    {
        let _limit = FileSizeLimit::lower_to(1024 * 1024 + 512 * 1024);
        let Got {
            rc, errmsg: msg, ..
        } = download_path(&c, &id, &target);
        assert_eq!(rc, WXM_E_IO, "{msg}");
        assert!(msg.contains("temporary file"), "{msg}");
        assert!(!msg.contains(TOKEN), "{msg}");
    }
    assert!(!target.exists());
    let second = dir.join("other.bin");
    let Got {
        rc, errmsg: msg, ..
    } = download_path(&c, &other, &second);
    assert_eq!(rc, 0, "{msg}");
    assert!(read(&second) == other_want, "the next file differs");
    // The first resumes from its partial file.
    downloads_intact(&c, &id, &target, &want);
    let _ = std::fs::remove_dir_all(dir);
}
