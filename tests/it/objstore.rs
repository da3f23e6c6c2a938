//! `wxm_download_to_object` (issue 23) through the C ABI: the emulator as
//! WeChat, versitygw (a real S3-compatible server that checks signatures)
//! as the object store. Objects are compared by sha256 with the media;
//! "nothing left behind" is ListMultipartUploads answering none.

use crate::support::s3::{S3View, Versitygw, S3_ACCESS, S3_SECRET};
use crate::support::{self, add_media, cs, ranges, start, text, ClientOpts, Platform, TestClient};
use serde_json::json;
use std::time::{Duration, Instant};
use wxmedia::error::*;
use wxmedia::ffi::download::*;
use wxmedia::ffi::objstore::*;

const BUCKET: &str = "media";
const MIB: u64 = 1024 * 1024;

pub struct Store(pub *mut wxm_objstore);

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: from wxm_objstore_new, freed once.
        unsafe { wxm_objstore_free(self.0) }
    }
}

/// A store for `endpoint` with the test credentials (`secret` to vary it).
pub fn store(endpoint: &str, secret: &str) -> Store {
    // SAFETY: live handle, NUL-terminated strings.
    unsafe {
        let s = wxm_objstore_new();
        assert!(!s.is_null());
        assert_eq!(wxm_objstore_set_endpoint(s, cs(endpoint).as_ptr()), 0);
        assert_eq!(wxm_objstore_set_region(s, cs("us-east-1").as_ptr()), 0);
        assert_eq!(
            wxm_objstore_set_credentials(
                s,
                cs(S3_ACCESS).as_ptr(),
                cs(secret).as_ptr(),
                std::ptr::null()
            ),
            0
        );
        assert_eq!(wxm_objstore_set_part_size(s, 5 * MIB), 0);
        Store(s)
    }
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub rc: i32,
    pub errmsg: String,
    pub last_errmsg: String,
    pub size: u64,
    pub resumed: u64,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub elapsed: Duration,
}

/// One `wxm_download_to_object` run; `before` may set up the handle (a
/// cancel from another thread, say) and gets its address.
pub fn to_object_with(
    c: &TestClient,
    media_id: &str,
    s: &Store,
    bucket: &str,
    key: &str,
    before: impl FnOnce(usize),
) -> Outcome {
    let t0 = Instant::now();
    // SAFETY: live handles for the duration of each call.
    unsafe {
        let d = wxm_download_new(c.0, cs(media_id).as_ptr());
        assert!(!d.is_null());
        before(d as usize);
        let rc = wxm_download_to_object(d, s.0, cs(bucket).as_ptr(), cs(key).as_ptr());
        let o = Outcome {
            rc,
            last_errmsg: support::last_errmsg(),
            errmsg: text(wxm_download_errmsg(d)).unwrap_or_default(),
            size: wxm_download_size(d),
            resumed: {
                let mut counted = support::empty_counters();
                assert_eq!(wxm_download_counters(d, &mut counted), 0);
                counted.resumed_from
            },
            content_type: text(wxm_download_content_type(d)),
            filename: text(wxm_download_filename(d)),
            elapsed: t0.elapsed(),
        };
        wxm_download_free(d);
        o
    }
}

pub fn to_object(c: &TestClient, media_id: &str, s: &Store, bucket: &str, key: &str) -> Outcome {
    to_object_with(c, media_id, s, bucket, key, |_| {})
}

/// versitygw with the test bucket.
pub fn gateway() -> (Versitygw, S3View) {
    let gw = Versitygw::start();
    let view = gw.view(BUCKET);
    view.create_bucket();
    (gw, view)
}

fn check_object(view: &S3View, key: &str, media: &[u8]) -> support::s3::Object {
    let o = view.object(key).expect("the object exists");
    assert_eq!(o.len, media.len() as u64, "{key}: length");
    assert_eq!(o.sha256, support::sha256_hex(media), "{key}: sha256");
    o
}

#[test]
fn one_mib_is_one_put_with_type_and_filename() {
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let (id, media) = add_media(
        &emu,
        json!({"size": MIB, "seed": 11, "filename": "报告 1.pdf", "content_type": "application/pdf"}),
    );
    let c = support::client(&emu, ClientOpts::default());
    let s = store(&gw.endpoint(), S3_SECRET);
    let o = to_object(&c, &id, &s, BUCKET, "in/one.pdf");
    assert_eq!(o.rc, 0, "{o:?}");
    assert_eq!(o.size, MIB);
    assert_eq!(o.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(o.filename.as_deref(), Some("报告 1.pdf"));
    let obj = check_object(&view, "in/one.pdf", &media);
    assert_eq!(obj.content_type.as_deref(), Some("application/pdf"));
    let cd = obj.content_disposition.expect("content-disposition");
    assert!(
        cd.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%201.pdf"),
        "{cd}"
    );
    assert!(view.uploads().is_empty());
}

#[test]
fn fifty_mib_in_parallel_parts() {
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let (id, media) = add_media(&emu, json!({"size": 50 * MIB + 123, "seed": 12}));
    let c = support::client(
        &emu,
        ClientOpts {
            chunk: 4 * MIB,
            parallelism: 4,
            ..ClientOpts::default()
        },
    );
    let s = store(&gw.endpoint(), S3_SECRET);
    let seen = std::sync::Mutex::new(Vec::<(u64, u64)>::new());
    unsafe extern "C" fn record(user: *mut std::ffi::c_void, done: u64, total: u64) -> i32 {
        // SAFETY: user is the &Mutex below, alive for the run.
        let seen = unsafe { &*(user as *const std::sync::Mutex<Vec<(u64, u64)>>) };
        seen.lock().expect("lock").push((done, total));
        0
    }
    let o = to_object_with(&c, &id, &s, BUCKET, "fifty", |d| {
        let user = &seen as *const _ as *mut std::ffi::c_void;
        // SAFETY: live handle; `seen` outlives the run.
        let rc = unsafe { wxm_download_set_progress(d as *mut wxm_download, Some(record), user) };
        assert_eq!(rc, 0);
    });
    assert_eq!(o.rc, 0, "{o:?}");
    // Progress counts bytes in the store, never goes back, ends at the size.
    let seen = seen.into_inner().expect("lock");
    let size = media.len() as u64;
    assert_eq!(seen.last(), Some(&(size, size)), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    let obj = check_object(&view, "fifty", &media);
    assert_eq!(obj.media_id_meta.as_deref(), Some(id.as_str()));
    assert!(view.uploads().is_empty());
    // Every byte fetched once.
    let fetched: u64 = ranges(&emu, &id).iter().map(|(a, b)| b - a + 1).sum();
    assert_eq!(fetched, media.len() as u64);
}

#[test]
fn wrong_credentials_fail_fast_with_a_clear_code_and_no_secret() {
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let (id, _) = add_media(&emu, json!({"size": 6 * MIB, "seed": 13}));
    let c = support::client(&emu, ClientOpts::default());
    let wrong = "not-the-secret-Xy12Ab34";
    let s = store(&gw.endpoint(), wrong);
    let o = to_object(&c, &id, &s, BUCKET, "k");
    assert_eq!(o.rc, WXM_E_OBJECT_STORE_AUTH, "{o:?}");
    assert!(o.elapsed < Duration::from_secs(2), "not retried: {o:?}");
    assert!(o.errmsg.contains("SignatureDoesNotMatch"), "{o:?}");
    support::assert_clean(&o.errmsg, &[wrong], "errmsg");
    support::assert_clean(&o.last_errmsg, &[wrong], "last_errmsg");
    // Nothing was fetched from WeChat, nothing created.
    assert!(ranges(&emu, &id).is_empty());
    assert!(view.uploads().is_empty() && view.object("k").is_none());
    // An unknown access key too.
    // SAFETY: live store, NUL-terminated strings.
    unsafe {
        assert_eq!(
            wxm_objstore_set_credentials(
                s.0,
                cs("nobody").as_ptr(),
                cs(S3_SECRET).as_ptr(),
                std::ptr::null()
            ),
            0
        );
    }
    let o = to_object(&c, &id, &s, BUCKET, "k");
    assert_eq!(o.rc, WXM_E_OBJECT_STORE_AUTH, "{o:?}");
}

#[test]
fn a_missing_bucket_is_its_own_code() {
    let emu = start(Platform::WeCom);
    let (gw, _view) = gateway();
    let (id, _) = add_media(&emu, json!({"size": MIB, "seed": 14}));
    let c = support::client(&emu, ClientOpts::default());
    let s = store(&gw.endpoint(), S3_SECRET);
    let o = to_object(&c, &id, &s, "no-such-bucket", "k");
    assert_eq!(o.rc, WXM_E_NO_SUCH_BUCKET, "{o:?}");
    assert!(o.errmsg.contains("no-such-bucket"), "{o:?}");
    assert!(o.elapsed < Duration::from_secs(2), "{o:?}");
}

/// The upload in progress for `key` once it holds at least `parts` media
/// parts (the marker, part 10000, not counted).
fn wait_for_parts(view: &S3View, key: &str, parts: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for id in view.uploads() {
            let done = view.parts(key, &id).iter().filter(|p| p.0 < 10_000).count();
            if done >= parts {
                return id;
            }
        }
        assert!(Instant::now() < deadline, "no part was ever uploaded");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn throttle(emu: &support::Emulator, id: &str, bytes_per_sec: u64) {
    support::fault(
        emu,
        json!({"kind": "throttle", "media_id": id, "bytes_per_sec": bytes_per_sec, "count": 10_000}),
    );
}

/// Runs a transfer and cancels it from another thread once a part is in
/// the store.
fn cancelled_midway(c: &TestClient, id: &str, s: &Store, view: &S3View, key: &str) -> Outcome {
    std::thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::channel::<usize>();
        sc.spawn(move || {
            let d = rx.recv().expect("handle");
            wait_for_parts(view, key, 1);
            // SAFETY: the handle lives until to_object_with returns, which
            // is after this cancel (it waits for it to take effect).
            unsafe { wxm_download_cancel(d as *const wxm_download) };
        });
        to_object_with(c, id, s, BUCKET, key, |d| tx.send(d).expect("send"))
    })
}

#[test]
fn a_cancel_aborts_the_upload_and_leaves_nothing() {
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let (id, _) = add_media(&emu, json!({"size": 30 * MIB, "seed": 15}));
    throttle(&emu, &id, 20_000_000);
    let c = support::client(
        &emu,
        ClientOpts {
            chunk: MIB,
            parallelism: 2,
            ..ClientOpts::default()
        },
    );
    let s = store(&gw.endpoint(), S3_SECRET);
    let o = cancelled_midway(&c, &id, &s, &view, "cancelled");
    assert_eq!(o.rc, WXM_E_CANCELLED, "{o:?}");
    assert!(view.uploads().is_empty(), "the upload was aborted");
    assert!(view.object("cancelled").is_none());
}

#[test]
fn kept_parts_are_resumed_by_the_next_run() {
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let size = 23 * MIB + 5;
    let (id, media) = add_media(&emu, json!({"size": size, "seed": 16, "encrypted": true}));
    throttle(&emu, &id, 20_000_000);
    let c = support::client(
        &emu,
        ClientOpts {
            chunk: MIB,
            parallelism: 2,
            ..ClientOpts::default()
        },
    );
    let s = store(&gw.endpoint(), S3_SECRET);
    // SAFETY: live store.
    assert_eq!(unsafe { wxm_objstore_set_keep_parts_on_failure(s.0, 1) }, 0);
    let o = cancelled_midway(&c, &id, &s, &view, "kept");
    assert_eq!(o.rc, WXM_E_CANCELLED, "{o:?}");
    assert_eq!(view.uploads().len(), 1, "the upload was kept");
    support::reset(&emu);
    let o = to_object(&c, &id, &s, BUCKET, "kept");
    assert_eq!(o.rc, 0, "{o:?}");
    assert!(o.resumed >= 5 * MIB, "{o:?}");
    check_object(&view, "kept", &media);
    assert!(view.uploads().is_empty());
    let fetched: u64 = ranges(&emu, &id).iter().map(|(a, b)| b - a + 1).sum();
    assert_eq!(
        fetched,
        size - o.resumed,
        "only the missing parts were fetched"
    );
}

#[test]
fn encrypted_media_parts_keep_the_alignment() {
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let (id, media) = add_media(
        &emu,
        json!({"size": 17 * MIB + 7, "seed": 17, "encrypted": true}),
    );
    let c = support::client(
        &emu,
        ClientOpts {
            chunk: 3 * MIB + 16,
            parallelism: 3,
            ..ClientOpts::default()
        },
    );
    let s = store(&gw.endpoint(), S3_SECRET);
    let o = to_object(&c, &id, &s, BUCKET, "enc");
    assert_eq!(o.rc, 0, "{o:?}");
    check_object(&view, "enc", &media);
    // The shared check also fails when no Range was seen at all.
    support::assert_aligned(&ranges(&emu, &id), 3 * MIB + 16, media.len() as u64);
}

#[test]
fn three_hundred_mib_with_bounded_memory() {
    if !support::in_own_process(module_path!(), "three_hundred_mib_with_bounded_memory") {
        return;
    }
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let size = 300 * MIB + 33;
    // Registered without holding it: the emulator generates it as served
    // and tells its sha256.
    let r = support::admin(
        &emu,
        "POST",
        "/__admin/media",
        json!({"size": size, "seed": 18}),
    );
    let id = r["media_id"].as_str().expect("media_id").to_string();
    let want_sha = r["sha256"].as_str().expect("sha256").to_string();
    let c = support::client(
        &emu,
        ClientOpts {
            chunk: 8 * MIB,
            parallelism: 4,
            ..ClientOpts::default()
        },
    );
    let s = store(&gw.endpoint(), S3_SECRET);
    // SAFETY: live store.
    assert_eq!(unsafe { wxm_objstore_set_part_size(s.0, 8 * MIB) }, 0);
    let base = support::peak_rss();
    let o = to_object(&c, &id, &s, BUCKET, "big");
    assert_eq!(o.rc, 0, "{o:?}");
    let peak = support::peak_rss();
    let obj = view.object("big").expect("object");
    assert_eq!((obj.len, obj.sha256), (size, want_sha));
    eprintln!(
        "300 MiB to_object: {:?}, peak RSS {} MiB (was {} MiB before)",
        o.elapsed,
        peak / MIB,
        base / MIB
    );
    // 4 parts of 8 MiB in flight, plus the emulator in this process.
    assert!(peak < base + 160 * MIB, "peak RSS {peak} from {base}");
}

/// The child side of the kill test: one to_object run configured from the
/// environment; exit 0 on success, 3 with the code on stderr otherwise.
#[test]
fn host_child() {
    let Ok(base) = std::env::var("WXM_OBJ_CHILD") else {
        return;
    };
    let var = |n: &str| std::env::var(n).expect(n);
    let c = support::new_client(&ClientOpts {
        base_url: base,
        chunk: MIB,
        parallelism: 2,
        io_ms: 20_000,
        ..ClientOpts::default()
    });
    let s = store(&var("WXM_OBJ_ENDPOINT"), S3_SECRET);
    let o = to_object(&c, &var("WXM_OBJ_MEDIA"), &s, BUCKET, &var("WXM_OBJ_KEY"));
    if o.rc != 0 {
        eprintln!("child: rc {} {}", o.rc, o.errmsg);
        std::process::exit(3);
    }
    eprint!("resumed={}", o.resumed);
    std::process::exit(0);
}

fn spawn_child(
    emu: &support::Emulator,
    gw: &Versitygw,
    media: &str,
    key: &str,
) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            &support::test_name(module_path!(), "host_child"),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WXM_OBJ_CHILD", emu.base_url())
        .env("WXM_OBJ_ENDPOINT", gw.endpoint())
        .env("WXM_OBJ_MEDIA", media)
        .env("WXM_OBJ_KEY", key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the host child")
}

#[test]
fn a_killed_host_is_resumed_by_a_new_process() {
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let size = 27 * MIB + 9;
    let (id, media) = add_media(&emu, json!({"size": size, "seed": 19, "encrypted": true}));
    throttle(&emu, &id, 15_000_000);
    let mut child = spawn_child(&emu, &gw, &id, "killed");
    wait_for_parts(&view, "killed", 2);
    // Child::kill is SIGKILL: no abort, no cleanup.
    child.kill().expect("SIGKILL");
    assert!(!child.wait().expect("reap").success());
    assert_eq!(view.uploads().len(), 1, "the killed run's upload stays");
    assert!(view.object("killed").is_none());
    support::reset(&emu);
    let out = spawn_child(&emu, &gw, &id, "killed")
        .wait_with_output()
        .expect("second child");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "second child: {err}");
    let resumed: u64 = err
        .rsplit("resumed=")
        .next()
        .and_then(|v| v.trim().parse().ok())
        .expect("resumed figure");
    assert!(resumed >= 2 * 5 * MIB, "{err}");
    check_object(&view, "killed", &media);
    assert!(view.uploads().is_empty());
    let fetched: u64 = ranges(&emu, &id).iter().map(|(a, b)| b - a + 1).sum();
    assert_eq!(
        fetched,
        size - resumed,
        "the new process fetched only the missing parts"
    );
}

#[test]
fn store_5xx_and_resets_mid_part_are_retried() {
    use crate::support::s3::{FaultyRelay, S3Fault};
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let relay = FaultyRelay::start(&gw.addr);
    let (id, media) = add_media(&emu, json!({"size": 21 * MIB + 3, "seed": 20}));
    relay.fault("POST*uploads=1", S3Fault::Status(500), 1);
    relay.fault("partNumber=1&", S3Fault::ResetAfter(MIB), 1);
    relay.fault("partNumber=2&", S3Fault::Status(503), 2);
    relay.fault("partNumber=3&", S3Fault::ResetAfter(10), 1);
    relay.fault("POST*uploadId=", S3Fault::Status(503), 1);
    // A byte damaged on the way: the store checks Content-MD5 (BadDigest).
    relay.fault("partNumber=4&", S3Fault::Corrupt(12_345), 1);
    let c = support::client(
        &emu,
        ClientOpts {
            chunk: 2 * MIB,
            parallelism: 3,
            ..ClientOpts::default()
        },
    );
    let s = store(&relay.endpoint(), S3_SECRET);
    let o = to_object(&c, &id, &s, BUCKET, "faulty");
    assert_eq!(o.rc, 0, "{o:?}");
    assert_eq!(relay.fired(), 7);
    // The damaged part was refused by the store's Content-MD5 check.
    let answers = relay.answers.lock().expect("answers").clone();
    assert_eq!(answers.len(), 1);
    assert!(
        answers[0].contains(" 400 ") && answers[0].ends_with("BadDigest"),
        "{answers:?}"
    );
    check_object(&view, "faulty", &media);
    assert!(view.uploads().is_empty());
}

#[test]
fn a_wechat_fault_and_a_store_fault_in_the_same_run() {
    use crate::support::s3::{FaultyRelay, S3Fault};
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let relay = FaultyRelay::start(&gw.addr);
    let (id, media) = add_media(
        &emu,
        json!({"size": 16 * MIB + 100, "seed": 21, "encrypted": true}),
    );
    support::fault(
        &emu,
        json!({"kind": "reset", "media_id": id, "after_bytes": 300_000}),
    );
    support::fault(
        &emu,
        json!({"kind": "http_status", "status": 503, "media_id": id}),
    );
    relay.fault("partNumber=2&", S3Fault::ResetAfter(2 * MIB), 1);
    relay.fault("partNumber=3&", S3Fault::Status(500), 1);
    let c = support::client(
        &emu,
        ClientOpts {
            chunk: MIB,
            parallelism: 2,
            ..ClientOpts::default()
        },
    );
    let s = store(&relay.endpoint(), S3_SECRET);
    let o = to_object(&c, &id, &s, BUCKET, "both");
    assert_eq!(o.rc, 0, "{o:?}");
    assert_eq!(relay.fired(), 2);
    assert_eq!(support::stats(&emu)["faults_fired"], 2);
    check_object(&view, "both", &media);
    assert!(view.uploads().is_empty());
}

#[test]
fn a_store_that_keeps_failing_ends_the_run_and_aborts_the_upload() {
    use crate::support::s3::{FaultyRelay, S3Fault};
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let relay = FaultyRelay::start(&gw.addr);
    let (id, _) = add_media(&emu, json!({"size": 12 * MIB, "seed": 22}));
    relay.fault("partNumber=2&", S3Fault::Status(503), 100);
    let c = support::client(
        &emu,
        ClientOpts {
            chunk: 4 * MIB,
            parallelism: 1,
            attempts: 3,
            ..ClientOpts::default()
        },
    );
    let s = store(&relay.endpoint(), S3_SECRET);
    let o = to_object(&c, &id, &s, BUCKET, "failing");
    assert_eq!(o.rc, WXM_E_OBJECT_STORE, "{o:?}");
    assert!(
        o.errmsg.contains("SlowDown") && o.errmsg.contains("503"),
        "{o:?}"
    );
    assert_eq!(relay.fired(), 3, "the client's 3 attempts");
    assert!(view.uploads().is_empty(), "aborted");
    assert!(view.object("failing").is_none());
}

#[test]
fn credentials_endpoint_and_region_from_the_environment() {
    let name = "credentials_endpoint_and_region_from_the_environment";
    if !support::in_own_process(module_path!(), name) {
        return;
    }
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let (id, media) = add_media(&emu, json!({"size": 6 * MIB + 1, "seed": 23}));
    // This process runs this test alone: nothing else reads the environment.
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", S3_ACCESS),
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", gw.endpoint().as_str()),
    ] {
        std::env::set_var(k, v);
    }
    std::env::remove_var("AWS_SESSION_TOKEN");
    std::env::remove_var("AWS_ENDPOINT_URL_S3");
    let c = support::client(&emu, ClientOpts::default());
    // Nothing set on the store: all from the environment (path style, as
    // an endpoint is given).
    let s = Store(wxm_objstore_new());
    let o = to_object(&c, &id, &s, BUCKET, "from-env");
    assert_eq!(o.rc, 0, "{o:?}");
    check_object(&view, "from-env", &media);
    // Without credentials anywhere: a clear usage error, nothing sent.
    std::env::remove_var("AWS_SECRET_ACCESS_KEY");
    let o = to_object(&c, &id, &s, BUCKET, "none");
    assert_eq!(o.rc, WXM_E_INVALID_ARG, "{o:?}");
    assert!(o.errmsg.contains("AWS_SECRET_ACCESS_KEY"), "{o:?}");
}

#[test]
fn the_store_is_reached_through_the_clients_tls_settings() {
    use crate::tls::{pki, TlsProxy};
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    // Small: the test's TLS proxy relays slowly (it polls each side).
    let (id, media) = add_media(&emu, json!({"size": 300_000, "seed": 24}));
    let p = pki(&["localhost", "127.0.0.1"]);
    let proxy = TlsProxy::start(&p, gw.addr.parse().expect("addr"));
    let endpoint = format!("https://localhost:{}", proxy.port);
    let s = store(&endpoint, S3_SECRET);
    // Verification on: the test CA is unknown to the default roots.
    let c = support::client(
        &emu,
        ClientOpts {
            attempts: 2,
            ..ClientOpts::default()
        },
    );
    let o = to_object(&c, &id, &s, BUCKET, "tls");
    assert_eq!(o.rc, WXM_E_TLS, "{o:?}");
    // The CA given to the client (wxm_config_set_ca_file) is trusted for
    // the store too: the same agent carries both.
    let dir = support::tempdir("objstore-tls");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &p.ca_pem).expect("write CA");
    let c = support::client(
        &emu,
        ClientOpts {
            ca_file: Some(ca.to_str().expect("utf-8").to_string()),
            io_ms: 20_000,
            ..ClientOpts::default()
        },
    );
    let o = to_object(&c, &id, &s, BUCKET, "tls");
    assert_eq!(o.rc, 0, "{o:?}");
    check_object(&view, "tls", &media);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_complete_whose_answer_was_lost_is_settled_by_the_object() {
    use crate::support::s3::{FaultyRelay, S3Fault};
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let relay = FaultyRelay::start(&gw.addr);
    let (id, media) = add_media(&emu, json!({"size": 11 * MIB + 1, "seed": 25}));
    // The store completes the upload, but its answer never arrives: the
    // repeat finds no such upload, and the object, of the right size, settles it.
    relay.fault("POST*uploadId=", S3Fault::DropAnswer, 1);
    let c = support::client(
        &emu,
        ClientOpts {
            chunk: 2 * MIB,
            parallelism: 2,
            ..ClientOpts::default()
        },
    );
    let s = store(&relay.endpoint(), S3_SECRET);
    let o = to_object(&c, &id, &s, BUCKET, "lost");
    assert_eq!(o.rc, 0, "{o:?}");
    assert_eq!(relay.fired(), 1);
    check_object(&view, "lost", &media);
    assert!(view.uploads().is_empty());
}

#[test]
fn a_resume_never_mixes_two_media() {
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let (a, _) = add_media(&emu, json!({"size": 12 * MIB, "seed": 26}));
    let (b, media_b) = add_media(&emu, json!({"size": 12 * MIB, "seed": 27}));
    throttle(&emu, &a, 20_000_000);
    let c = support::client(
        &emu,
        ClientOpts {
            chunk: MIB,
            parallelism: 1,
            ..ClientOpts::default()
        },
    );
    let s = store(&gw.endpoint(), S3_SECRET);
    // SAFETY: live store.
    assert_eq!(unsafe { wxm_objstore_set_keep_parts_on_failure(s.0, 1) }, 0);
    let o = cancelled_midway(&c, &a, &s, &view, "same-key");
    assert_eq!(o.rc, WXM_E_CANCELLED, "{o:?}");
    let kept = view.uploads();
    assert_eq!(kept.len(), 1);
    // Another media to the same key: a fresh upload, not media a's parts.
    let o = to_object(&c, &b, &s, BUCKET, "same-key");
    assert_eq!(o.rc, 0, "{o:?}");
    assert_eq!(o.resumed, 0, "{o:?}");
    check_object(&view, "same-key", &media_b);
    // Media a's upload is not b's to judge: it stays for a's resume.
    assert_eq!(view.uploads(), kept);
    // And the same media with another part size does not resume it either.
    // SAFETY: live store.
    assert_eq!(unsafe { wxm_objstore_set_part_size(s.0, 6 * MIB) }, 0);
    support::reset(&emu);
    let o = to_object(&c, &a, &s, BUCKET, "same-key");
    assert_eq!(o.rc, 0, "{o:?}");
    assert_eq!(o.resumed, 0, "{o:?}");
}

#[test]
fn null_and_bad_arguments_answer_codes() {
    let emu = start(Platform::WeCom);
    let c = support::client(&emu, ClientOpts::default());
    let null: *const std::ffi::c_char = std::ptr::null();
    let bad: &[u8] = b"\xff\xfe\0";
    let bad = bad.as_ptr() as *const std::ffi::c_char;
    // SAFETY: NULL or live handles and NUL-terminated strings throughout.
    unsafe {
        let e = WXM_E_INVALID_ARG;
        assert_eq!(
            wxm_objstore_set_endpoint(std::ptr::null_mut(), cs("http://x").as_ptr()),
            e
        );
        assert_eq!(
            wxm_objstore_set_region(std::ptr::null_mut(), cs("r").as_ptr()),
            e
        );
        assert_eq!(wxm_objstore_set_path_style(std::ptr::null_mut(), 1), e);
        assert_eq!(
            wxm_objstore_set_keep_parts_on_failure(std::ptr::null_mut(), 1),
            e
        );
        assert_eq!(wxm_objstore_set_part_size(std::ptr::null_mut(), 5 * MIB), e);
        wxm_objstore_free(std::ptr::null_mut());
        let s = Store(wxm_objstore_new());
        assert_eq!(wxm_objstore_set_endpoint(s.0, null), e);
        assert_eq!(wxm_objstore_set_endpoint(s.0, bad), e);
        assert_eq!(wxm_objstore_set_endpoint(s.0, cs("ftp://h/").as_ptr()), e);
        assert_eq!(wxm_objstore_set_endpoint(s.0, cs("not a url").as_ptr()), e);
        assert_eq!(wxm_objstore_set_region(s.0, cs("").as_ptr()), e);
        assert_eq!(
            wxm_objstore_set_credentials(s.0, null, cs("s").as_ptr(), null),
            e
        );
        assert_eq!(
            wxm_objstore_set_credentials(s.0, cs("k").as_ptr(), cs("").as_ptr(), null),
            e
        );
        assert_eq!(
            wxm_objstore_set_credentials(s.0, cs("k").as_ptr(), cs("s").as_ptr(), bad),
            e
        );
        assert_eq!(wxm_objstore_set_part_size(s.0, 5 * MIB - 16), e);
        assert_eq!(wxm_objstore_set_part_size(s.0, 5 * MIB + 8), e);
        assert_eq!(wxm_objstore_set_part_size(s.0, 1 << 40), e);
        assert!(!support::last_errmsg().is_empty());
        let (bucket, key) = (cs(BUCKET), cs("k"));
        assert_eq!(
            wxm_download_to_object(std::ptr::null_mut(), s.0, bucket.as_ptr(), key.as_ptr()),
            e
        );
        let d = wxm_download_new(c.0, cs("m").as_ptr());
        assert_eq!(
            wxm_download_to_object(d, std::ptr::null(), bucket.as_ptr(), key.as_ptr()),
            e
        );
        assert_eq!(wxm_download_to_object(d, s.0, null, key.as_ptr()), e);
        assert_eq!(wxm_download_to_object(d, s.0, bucket.as_ptr(), null), e);
        assert_eq!(
            wxm_download_to_object(d, s.0, bucket.as_ptr(), cs("").as_ptr()),
            e
        );
        assert_eq!(
            wxm_download_to_object(d, s.0, cs("").as_ptr(), key.as_ptr()),
            e
        );
        // A start offset is for sinks only.
        assert_eq!(wxm_download_set_start(d, 16), 0);
        assert_eq!(
            wxm_download_to_object(d, s.0, bucket.as_ptr(), key.as_ptr()),
            e
        );
        wxm_download_free(d);
        for code in [
            WXM_E_OBJECT_STORE,
            WXM_E_OBJECT_STORE_AUTH,
            WXM_E_NO_SUCH_BUCKET,
        ] {
            let t = text(wxmedia::ffi::wxm_strerror(code)).expect("text");
            assert!(t.contains("object store"), "{code}: {t}");
        }
    }
}
