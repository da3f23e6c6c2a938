//! The progress callback through the C ABI: paced while bytes flow, a
//! heartbeat while the transfer waits (so a host can stop a stalled transfer
//! from the transfer's own thread), always a call for the last byte.

use crate::support::*;
use serde_json::json;
use std::ffi::c_void;
use std::time::{Duration, Instant};
use wxmedia::error::*;
use wxmedia::ffi::download::*;
use wxmedia::ffi::upload::*;

struct Calls {
    /// (when, done, total, thread) of every call.
    seen: Vec<(Instant, u64, u64, std::thread::ThreadId)>,
    /// Stop (return 9) once this many calls in a row reported no new bytes.
    stop_after_idle: Option<usize>,
    idle: usize,
}

impl Calls {
    fn new(stop_after_idle: Option<usize>) -> Calls {
        Calls {
            seen: Vec::new(),
            stop_after_idle,
            idle: 0,
        }
    }
}

unsafe extern "C" fn record(ud: *mut c_void, done: u64, total: u64) -> i32 {
    // SAFETY: ud is the &mut Calls the test passed, live for the run.
    let c = unsafe { &mut *(ud as *mut Calls) };
    if c.seen.last().is_some_and(|l| l.1 == done) {
        c.idle += 1;
    } else {
        c.idle = 0;
    }
    c.seen
        .push((Instant::now(), done, total, std::thread::current().id()));
    if c.stop_after_idle.is_some_and(|n| c.idle >= n) {
        return 9;
    }
    0
}

unsafe extern "C" fn discard(_: *mut c_void, _: u64, _: *const u8, _: usize) -> i32 {
    0
}

/// Runs one download (to a sink, or to `path`) with the recording callback.
fn download_with_progress(
    c: &TestClient,
    media_id: &str,
    path: Option<&std::path::Path>,
    calls: &mut Calls,
) -> (i32, String) {
    // SAFETY: live handles and state for the duration of each call.
    unsafe {
        let d = wxm_download_new(c.0, cs(media_id).as_ptr());
        assert!(!d.is_null());
        assert_eq!(
            wxm_download_set_progress(d, Some(record), calls as *mut Calls as *mut c_void),
            0
        );
        let rc = match path {
            Some(p) => wxm_download_to_path(d, cs(p.to_str().expect("utf-8")).as_ptr()),
            None => wxm_download_to_sink(d, Some(discard), std::ptr::null_mut()),
        };
        let msg = text(wxm_download_errmsg(d)).unwrap_or_default();
        wxm_download_free(d);
        (rc, msg)
    }
}

#[test]
fn heartbeat_lets_the_host_stop_a_stalled_download() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 200_000, "seed": 3}));
    let dir = tempdir("progress-stall");
    for parallelism in [1u32, 3] {
        for to_path in [false, true] {
            reset(&emu);
            let c = client(
                &emu,
                ClientOpts {
                    io_ms: 60_000,
                    parallelism,
                    chunk: 32 * 1024,
                    ..Default::default()
                },
            );
            // Every request stalls for 30 s after a few bytes.
            fault(
                &emu,
                json!({"kind": "stall", "media_id": id, "after_bytes": 10, "ms": 30_000, "count": 100}),
            );
            let path = dir.join(format!("stalled-{parallelism}.bin"));
            let mut calls = Calls::new(Some(3));
            let began = Instant::now();
            let (rc, msg) =
                download_with_progress(&c, &id, to_path.then_some(path.as_path()), &mut calls);
            let took = began.elapsed();
            let what = format!("parallelism {parallelism}, to_path {to_path}");
            assert_eq!(rc, WXM_E_ABORTED, "{what}: {msg}");
            assert!(
                msg.contains("progress callback returned 9"),
                "{what}: {msg}"
            );
            // Three idle calls about 100 ms apart, not the 30 s stall.
            assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
            let me = std::thread::current().id();
            assert!(
                calls.seen.iter().all(|s| s.3 == me),
                "{what}: another thread"
            );
            let idle: Vec<_> = calls.seen.windows(2).filter(|w| w[0].1 == w[1].1).collect();
            assert!(idle.len() >= 3, "{what}: {} idle calls", idle.len());
            for w in idle {
                let gap = w[1].0 - w[0].0;
                assert!(
                    gap >= Duration::from_millis(90),
                    "{what}: heartbeat {gap:?} apart"
                );
            }
            assert!(!path.exists(), "{what}: a stopped download left the file");
        }
    }
}

#[test]
fn progress_is_paced_and_ends_on_the_last_byte() {
    let emu = start(Platform::WeCom);
    let size = 6 * 1024 * 1024 + 5;
    let (id, _) = add_media(&emu, json!({"size": size, "seed": 4}));
    // 50 MB/s: about 120 ms, many 16 KiB reads.
    fault(
        &emu,
        json!({"kind": "throttle", "bytes_per_sec": 50_000_000, "count": 1000, "media_id": id}),
    );
    let dir = tempdir("progress-pace");
    for (parallelism, to_path) in [(1u32, false), (1, true), (4, false), (4, true)] {
        let c = client(
            &emu,
            ClientOpts {
                parallelism,
                chunk: 1024 * 1024,
                ..Default::default()
            },
        );
        let mut calls = Calls::new(None);
        let began = Instant::now();
        let path = dir.join(format!("paced-{parallelism}.bin"));
        let (rc, msg) =
            download_with_progress(&c, &id, to_path.then_some(path.as_path()), &mut calls);
        let took = began.elapsed();
        let what = format!("parallelism {parallelism}, to_path {to_path}");
        assert_eq!(rc, 0, "{what}: {msg}");
        let last = calls.seen.last().expect("no progress call");
        assert_eq!((last.1, last.2), (size, size), "{what}: last call");
        assert!(
            calls.seen.windows(2).all(|w| w[0].1 <= w[1].1),
            "{what}: not monotonic"
        );
        // At most one call per 10 ms, plus the first and the last.
        let bound = took.as_millis() as usize / 10 + 2;
        assert!(
            calls.seen.len() <= bound,
            "{what}: {} calls in {took:?}",
            calls.seen.len()
        );
        assert!(calls.seen.len() >= 2, "{what}: {} calls", calls.seen.len());
    }
}

#[test]
fn heartbeat_while_an_upload_waits_for_its_answer() {
    let emu = start(Platform::WeCom);
    let c = client(
        &emu,
        ClientOpts {
            io_ms: 60_000,
            attempts: 1,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "slow_headers", "ms": 20_000, "endpoint": "media/upload", "count": 5}),
    );
    let dir = tempdir("progress-upload");
    let file = dir.join("u.bin");
    std::fs::write(&file, media_bytes(b"", 300_000, 5)).expect("write");
    let mut calls = Calls::new(Some(3));
    let began = Instant::now();
    // SAFETY: live handles and state for the duration of each call.
    let (rc, msg) = unsafe {
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        assert_eq!(
            wxm_upload_set_path(u, cs(file.to_str().expect("utf-8")).as_ptr()),
            0
        );
        assert_eq!(
            wxm_upload_set_progress(u, Some(record), &mut calls as *mut Calls as *mut c_void),
            0
        );
        let rc = wxm_upload_run(u);
        let msg = text(wxm_upload_errmsg(u)).unwrap_or_default();
        wxm_upload_free(u);
        (rc, msg)
    };
    assert_eq!(rc, WXM_E_ABORTED, "{msg}");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    let last = calls.seen.last().expect("calls");
    assert_eq!(last.1, 300_000, "the body was sent before the wait");
}

/// A server that accepts and then never reads: the upload's writes block
/// once the socket buffers are full.
fn deaf_server() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = std::thread::spawn(move || {
        if let Ok((conn, _)) = listener.accept() {
            std::thread::sleep(Duration::from_secs(4));
            drop(conn);
        }
    });
    (addr, held)
}

fn deaf_client(addr: std::net::SocketAddr) -> TestClient {
    // SAFETY: every pointer passed is live for the call; the config is freed once.
    unsafe {
        use wxmedia::ffi::*;
        let cfg = wxm_config_new(1);
        let base = format!("http://{addr}");
        assert_eq!(wxm_config_set_base_url(cfg, cs(&base).as_ptr()), 0);
        assert_eq!(wxm_config_set_access_token(cfg, cs(TOKEN).as_ptr()), 0);
        assert_eq!(wxm_config_set_timeouts(cfg, 2000, 60_000), 0);
        assert_eq!(wxm_config_set_retries(cfg, 1, 10), 0);
        assert_eq!(wxm_config_set_limit(cfg, cs("file").as_ptr(), 1 << 30), 0);
        client_from_config(cfg)
    }
}

#[test]
fn cancel_and_heartbeat_reach_an_upload_blocked_in_a_write() {
    let dir = tempdir("progress-deaf");
    let file = dir.join("big.bin");
    // Far more than loopback socket buffers hold.
    std::fs::write(&file, media_bytes(b"", 48 << 20, 6)).expect("write");
    let path = cs(file.to_str().expect("utf-8"));

    // A cancel from another thread.
    let (addr, held) = deaf_server();
    let c = deaf_client(addr);
    // SAFETY: the handle outlives both threads' use of it.
    unsafe {
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        assert_eq!(wxm_upload_set_path(u, path.as_ptr()), 0);
        let up = u as usize;
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            wxm_upload_cancel(up as *const _);
            Instant::now()
        });
        let rc = wxm_upload_run(u);
        let returned = Instant::now();
        let cancelled_at = canceller.join().expect("canceller");
        assert_eq!(rc, WXM_E_CANCELLED, "{:?}", text(wxm_upload_errmsg(u)));
        let late = returned.saturating_duration_since(cancelled_at);
        assert!(
            late < Duration::from_millis(1500),
            "cancel honoured {late:?} late"
        );
        wxm_upload_free(u);
    }
    drop(c);
    held.join().expect("server");

    // The heartbeat, on the calling thread.
    let (addr, held) = deaf_server();
    let c = deaf_client(addr);
    let mut calls = Calls::new(Some(3));
    let began = Instant::now();
    // SAFETY: live handles and state for the duration of each call.
    let rc = unsafe {
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        assert_eq!(wxm_upload_set_path(u, path.as_ptr()), 0);
        assert_eq!(
            wxm_upload_set_progress(u, Some(record), &mut calls as *mut Calls as *mut c_void),
            0
        );
        let rc = wxm_upload_run(u);
        wxm_upload_free(u);
        rc
    };
    assert_eq!(rc, WXM_E_ABORTED);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    let last = calls.seen.last().expect("calls");
    assert!(
        last.1 < 48 << 20,
        "the server read nothing, yet {} sent",
        last.1
    );
    drop(c);
    held.join().expect("server");
}

/// A listener whose accept queue is full: further SYNs are dropped, so a
/// connect to it hangs as to a host that does not answer.
fn unanswering_listener() -> (std::net::SocketAddr, Vec<std::net::TcpStream>, i32) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a socket we own; checked results.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, &sin as *const _ as *const libc::sockaddr, len),
            0
        );
        assert_eq!(libc::listen(fd, 0), 0);
        let listener = std::net::TcpListener::from_raw_fd(fd);
        let addr = listener.local_addr().expect("addr");
        std::mem::forget(listener); // closed by the caller through the fd
                                    // Fill the queue (never accepted).
        let mut held = Vec::new();
        for _ in 0..3 {
            if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                held.push(s);
            }
        }
        (addr, held, fd)
    }
}

#[test]
fn cancel_and_heartbeat_reach_a_connect_that_gets_no_answer() {
    let (addr, held, fd) = unanswering_listener();
    // Proof that the next connect really hangs.
    let probe = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500));
    assert!(probe.is_err(), "the accept queue did not fill: {probe:?}");

    let c = deaf_client(addr);
    // The heartbeat stops it.
    let mut calls = Calls::new(Some(3));
    let began = Instant::now();
    let (rc, msg) = download_with_progress(&c, "m", None, &mut calls);
    assert_eq!(rc, WXM_E_ABORTED, "{msg}");
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );

    // A cancel from another thread stops it.
    // SAFETY: the handle outlives both threads' use of it.
    unsafe {
        let d = wxm_download_new(c.0, cs("m").as_ptr());
        let dp = d as usize;
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            wxm_download_cancel(dp as *const _);
            Instant::now()
        });
        let rc = wxm_download_to_sink(d, Some(discard), std::ptr::null_mut());
        let returned = Instant::now();
        let cancelled_at = canceller.join().expect("canceller");
        assert_eq!(rc, WXM_E_CANCELLED, "{:?}", text(wxm_download_errmsg(d)));
        let late = returned.saturating_duration_since(cancelled_at);
        assert!(
            late < Duration::from_millis(500),
            "cancel honoured {late:?} late"
        );
        wxm_download_free(d);
    }
    drop(held);
    // SAFETY: the listener's fd, closed once.
    unsafe { libc::close(fd) };
}

#[test]
fn heartbeat_reaches_the_pause_between_retries() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 50_000, "seed": 8}));
    let c = client(
        &emu,
        ClientOpts {
            attempts: 5,
            backoff_ms: 5_000,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "http_status", "status": 503, "count": 10, "media_id": id}),
    );
    let mut calls = Calls::new(Some(3));
    let began = Instant::now();
    let (rc, msg) = download_with_progress(&c, &id, None, &mut calls);
    assert_eq!(rc, WXM_E_ABORTED, "{msg}");
    // Not the 5 s pause (and more) after the first 503.
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
}
