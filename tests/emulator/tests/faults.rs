//! Every scripted fault of the admin API.

mod common;
use common::*;
use serde_json::json;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

fn setup(size: u64) -> Emulator {
    let emu = start(Platform::WeCom);
    add_generated(emu.addr(), "m", size, 4, json!({}));
    emu
}

fn partial(emu: &Emulator, headers: &[(&str, &str)]) -> Partial {
    let mut c = Conn::open(emu.addr());
    c.send("GET", &media_get("m"), headers, b"");
    c.read_partial().expect("head")
}

#[test]
fn reset_after_bytes_is_a_real_rst() {
    let emu = setup(500_000);
    let a = emu.addr();
    admin(
        a,
        "faults",
        json!({"kind": "reset", "after_bytes": 100_000}),
    );
    let p = partial(&emu, &[]);
    assert_eq!(p.status, 200);
    assert_eq!(p.announced, Some(500_000));
    assert_eq!(p.error, Some(ErrorKind::ConnectionReset));
    assert_eq!(p.body.len(), 100_000);
    assert_eq!(p.body, generated(4, 0, 100_000));
    // Only once (count 1): the next request is whole.
    assert_eq!(get(a, &media_get("m"), &[]).body.len(), 500_000);
    assert_eq!(stats(a)["faults_fired"], 1);

    // after_bytes 0 on a ranged request: headers, then RST.
    admin(a, "faults", json!({"kind": "reset"}));
    let p = partial(&emu, &[("Range", "bytes=0-999")]);
    assert_eq!(p.status, 206);
    assert!(p.body.is_empty());
    assert_eq!(p.error, Some(ErrorKind::ConnectionReset));
}

#[test]
fn stall_then_continue() {
    let emu = setup(200_000);
    admin(
        emu.addr(),
        "faults",
        json!({"kind": "stall", "after_bytes": 1000, "ms": 400}),
    );
    let t = Instant::now();
    let p = partial(&emu, &[]);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(p.error, None);
    assert_eq!(p.body, generated(4, 0, 200_000));
}

#[test]
fn stall_is_observable_mid_body() {
    // A client with a 200 ms read timeout sees the first bytes, then times out.
    let emu = setup(10_000);
    admin(
        emu.addr(),
        "faults",
        json!({"kind": "stall", "after_bytes": 5000, "ms": 1500}),
    );
    let mut c = Conn::open(emu.addr());
    c.stream()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    c.send("GET", &media_get("m"), &[], b"");
    let p = c.read_partial().unwrap();
    assert_eq!(p.body.len(), 5000);
    assert!(
        matches!(p.error, Some(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{:?}",
        p.error
    );
}

#[test]
fn slow_headers() {
    let emu = setup(100);
    admin(
        emu.addr(),
        "faults",
        json!({"kind": "slow_headers", "ms": 300, "endpoint": "any"}),
    );
    let t = Instant::now();
    let r = get(emu.addr(), &media_get("m"), &[]);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.body.len(), 100);
    let t = Instant::now();
    get(emu.addr(), &media_get("m"), &[]);
    assert!(t.elapsed() < Duration::from_millis(300));
}

#[test]
fn errcode_fault_counts_and_filters() {
    let emu = setup(100);
    let a = emu.addr();
    add_generated(a, "other", 10, 0, json!({}));
    admin(
        a,
        "faults",
        json!({"kind": "errcode", "errcode": -1, "count": 2, "media_id": "m"}),
    );
    admin(
        a,
        "faults",
        json!({"kind": "errcode", "errcode": 45033, "endpoint": "gettoken"}),
    );
    assert_eq!(get(a, &media_get("other"), &[]).body.len(), 10);
    let r = get(a, &media_get("m"), &[]);
    assert_eq!((r.status, r.errcode()), (200, -1));
    assert_eq!(r.header("error-code").as_deref(), Some("-1"));
    assert_eq!(get(a, &media_get("m"), &[]).errcode(), -1);
    assert_eq!(get(a, &media_get("m"), &[]).body.len(), 100);
    let r = get(
        a,
        "/cgi-bin/gettoken?corpid=wxm-corp&corpsecret=wxm-secret",
        &[],
    );
    assert_eq!(r.errcode(), 45033);
    let r = get(
        a,
        "/cgi-bin/gettoken?corpid=wxm-corp&corpsecret=wxm-secret",
        &[],
    );
    assert!(r.json()["access_token"].is_string());
    assert_eq!(stats(a)["faults_fired"], 3);
}

#[test]
fn errcode_fault_on_upload_drains_body() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    admin(
        a,
        "faults",
        json!({"kind": "errcode", "errcode": 40001, "endpoint": "media/upload"}),
    );
    let big = jpeg(3 * 1024 * 1024);
    assert_eq!(upload(a, "image", "a.jpg", &big).errcode(), 40001);
    assert_eq!(upload(a, "image", "a.jpg", &big).errcode(), 0);
}

#[test]
fn http_status() {
    let emu = setup(100);
    admin(
        emu.addr(),
        "faults",
        json!({"kind": "http_status", "status": 503}),
    );
    let r = get(emu.addr(), &media_get("m"), &[]);
    assert_eq!(r.status, 503);
    assert!(!r.body.is_empty());
    admin(emu.addr(), "faults", json!({"kind": "http_status"}));
    assert_eq!(get(emu.addr(), &media_get("m"), &[]).status, 500);
}

#[test]
fn token_expire_mid_body() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    add_generated(a, "m", 100_000, 4, json!({}));
    let tok = get(
        a,
        "/cgi-bin/gettoken?corpid=wxm-corp&corpsecret=wxm-secret",
        &[],
    )
    .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    admin(
        a,
        "faults",
        json!({"kind": "token_expire", "after_bytes": 4096}),
    );
    let path = format!("/cgi-bin/media/get?access_token={tok}&media_id=m");
    let mut c = Conn::open(a);
    c.send("GET", &path, &[], b"");
    let p = c.read_partial().unwrap();
    assert_eq!(p.body.len(), 4096);
    assert_eq!(p.error, Some(ErrorKind::UnexpectedEof));
    assert_eq!(get(a, &path, &[]).errcode(), 42001);
    // A new token works.
    let tok2 = get(
        a,
        "/cgi-bin/gettoken?corpid=wxm-corp&corpsecret=wxm-secret",
        &[],
    )
    .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(tok, tok2);
    let r = get(
        a,
        &format!("/cgi-bin/media/get?access_token={tok2}&media_id=m"),
        &[],
    );
    assert_eq!(r.body.len(), 100_000);
}

#[test]
fn wrong_content_range() {
    let emu = setup(10_000);
    admin(emu.addr(), "faults", json!({"kind": "wrong_content_range"}));
    let r = get(emu.addr(), &media_get("m"), &[("Range", "bytes=1024-2047")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range").as_deref(),
        Some("bytes 1040-2063/10000")
    );
    assert_eq!(r.body, generated(4, 1024, 1024));
}

#[test]
fn short_body() {
    let emu = setup(10_000);
    admin(emu.addr(), "faults", json!({"kind": "short_body"}));
    let p = partial(&emu, &[]);
    assert_eq!(p.announced, Some(10_000));
    assert_eq!(p.body.len(), 5000);
    assert_eq!(p.error, Some(ErrorKind::UnexpectedEof));
    admin(
        emu.addr(),
        "faults",
        json!({"kind": "short_body", "after_bytes": 10}),
    );
    let p = partial(&emu, &[("Range", "bytes=0-999")]);
    assert_eq!(p.announced, Some(1000));
    assert_eq!(p.body, generated(4, 0, 990));
    assert_eq!(p.error, Some(ErrorKind::UnexpectedEof));
}

#[test]
fn ignore_range() {
    let emu = setup(10_000);
    admin(emu.addr(), "faults", json!({"kind": "ignore_range"}));
    let r = get(emu.addr(), &media_get("m"), &[("Range", "bytes=0-99")]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-range").is_none());
    assert_eq!(r.body.len(), 10_000);
    // The Range asked is still recorded.
    assert_eq!(stats(emu.addr())["ranges"][0]["header"], "bytes=0-99");
}

#[test]
fn throttle() {
    let emu = setup(300_000);
    admin(
        emu.addr(),
        "faults",
        json!({"kind": "throttle", "bytes_per_sec": 1_000_000}),
    );
    let t = Instant::now();
    let r = get(emu.addr(), &media_get("m"), &[]);
    let el = t.elapsed();
    assert_eq!(r.body, generated(4, 0, 300_000));
    assert!(el >= Duration::from_millis(250), "{el:?}");
    assert!(el < Duration::from_secs(5), "{el:?}");
}

#[test]
fn faults_on_video_and_any() {
    let emu = start(Platform::Official);
    let a = emu.addr();
    add_generated(a, "v", 50_000, 1, json!({"video": true}));
    admin(
        a,
        "faults",
        json!({"kind": "reset", "endpoint": "video", "after_bytes": 10}),
    );
    let mut c = Conn::open(a);
    c.send("GET", "/__video/v", &[], b"");
    let p = c.read_partial().unwrap();
    assert_eq!(
        (p.body.len(), p.error),
        (10, Some(ErrorKind::ConnectionReset))
    );
    admin(
        a,
        "faults",
        json!({"kind": "http_status", "status": 502, "endpoint": "any", "count": 2}),
    );
    assert_eq!(
        get(
            a,
            "/cgi-bin/token?grant_type=client_credential&appid=wxm-corp&secret=wxm-secret",
            &[]
        )
        .status,
        502
    );
    assert_eq!(get(a, "/__video/v", &[]).status, 502);
    assert_eq!(get(a, "/__video/v", &[]).status, 200);
}
