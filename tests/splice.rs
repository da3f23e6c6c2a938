//! `to_path` over plain http moves body bytes from the socket to the file
//! inside the kernel (socket → pipe → file, src/tcp.rs `Pipe`). These tests
//! hold it to what reads guarantee: the same bytes, the same failures, the
//! same resumption, and no descriptor left once the client is freed.
//!
//! They run one at a time (`SERIAL`): one counts the process's pipes and
//! another lowers its file-size limit.
#![cfg(target_os = "linux")]

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use wxmedia::error::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pipes this process has open.
fn open_pipes() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("pipe:"))
        })
        .count()
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

#[test]
fn file_downloads_go_through_one_pipe_that_the_client_closes() {
    let _one = serial();
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 3 * 1024 * 1024 + 5, "seed": 31}));
    let before = open_pipes();
    let c = big_chunks(&emu, ClientOpts::default());
    let dir = tempdir("splice-pipes");
    for round in 0..3 {
        let target = dir.join(format!("r{round}.bin"));
        let (rc, msg) = download_path(&c, &id, &target);
        assert_eq!(rc, 0, "{msg}");
        assert!(read(&target) == want, "round {round}: file differs");
    }
    // One pipe, kept for the client's next transfers; one connection.
    assert_eq!(open_pipes(), before + 2, "a pipe's two ends, kept");
    assert_eq!(stats(&emu)["connections_opened"].as_u64(), Some(1));
    drop(c);
    assert_eq!(open_pipes(), before, "freed with the client");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_connection_cut_while_splicing_resumes_with_the_right_bytes() {
    let _one = serial();
    let emu = start(Platform::WeCom);
    let (c, id, want) = media_cut_mid_body(&emu, 32);
    let dir = tempdir("splice-cut");
    let target = dir.join("cut.bin");
    let (rc, msg) = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(read(&target) == want, "content differs");
    let s = stats(&emu);
    assert_eq!(s["faults_fired"].as_u64(), Some(1), "{s}");
    // The retry asked only for what the file did not have.
    let asked = ranges(&emu, &id);
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked[1].0 >= 1024 * 1024 - 64 * 1024, "{asked:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_stall_while_splicing_times_out_and_the_next_call_resumes() {
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
    let dir = tempdir("splice-stall");
    let target = dir.join("stall.bin");
    let t0 = Instant::now();
    let (rc, msg) = download_path(&c, &id, &target);
    assert_eq!(rc, WXM_E_TIMEOUT, "{msg}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(!target.exists());
    reset(&emu);
    let (rc, msg) = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(read(&target) == want, "content differs");
    // It went on from the bytes the file had before the stall.
    let asked = ranges(&emu, &id);
    assert!(asked.iter().all(|&(s, _)| s >= 1024 * 1024), "{asked:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_cancel_while_splicing_is_prompt_and_loses_nothing() {
    let _one = serial();
    let emu = start(Platform::WeCom);
    let size = 4 * 1024 * 1024u64;
    let (id, want) = add_media(&emu, json!({"size": size, "seed": 34}));
    let c = big_chunks(&emu, ClientOpts::default());
    fault(
        &emu,
        json!({"kind": "throttle", "media_id": id, "bytes_per_sec": 2_000_000, "count": 100}),
    );
    let dir = tempdir("splice-cancel");
    let target = dir.join("cancel.bin");
    let (rc, took) = to_path_cancelled_after(&c, &id, &target, 600);
    assert_eq!(rc, WXM_E_CANCELLED);
    assert!(
        took < Duration::from_secs(1),
        "returned {took:?} after the cancel"
    );
    reset(&emu);
    let (rc, msg) = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(read(&target) == want, "content differs");
    let fetched: u64 = ranges(&emu, &id).iter().map(|(s, e)| e - s + 1).sum();
    assert!(fetched < size, "the second call resumed: fetched {fetched}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn parallel_workers_splice_at_their_offsets() {
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
    let dir = tempdir("splice-parallel");
    let target = dir.join("p.bin");
    let (rc, msg) = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(read(&target) == want, "content differs");
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

/// A file that cannot take the bytes fails the call with an io error;
/// what the pipe still held is dropped, never written into the next file.
#[test]
fn a_file_that_refuses_bytes_fails_cleanly_and_the_next_download_is_whole() {
    let _one = serial();
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 3 * 1024 * 1024, "seed": 36}));
    let (other, other_want) = add_media(&emu, json!({"size": 2 * 1024 * 1024 + 9, "seed": 37}));
    let c = big_chunks(&emu, ClientOpts::default());
    let dir = tempdir("splice-efbig");
    let target = dir.join("big.bin");
    {
        let _limit = FileSizeLimit::lower_to(1024 * 1024 + 512 * 1024);
        let (rc, msg) = download_path(&c, &id, &target);
        assert_eq!(rc, WXM_E_IO, "{msg}");
        assert!(msg.contains("temporary file"), "{msg}");
        assert!(!msg.contains(TOKEN), "{msg}");
    }
    assert!(!target.exists());
    let second = dir.join("other.bin");
    let (rc, msg) = download_path(&c, &other, &second);
    assert_eq!(rc, 0, "{msg}");
    assert!(read(&second) == other_want, "the next file differs");
    // The first resumes from its partial file.
    let (rc, msg) = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(read(&target) == want, "content differs");
    let _ = std::fs::remove_dir_all(dir);
}
