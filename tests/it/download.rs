//! Downloads through the C ABI against the emulator on loopback.

use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};
use wxmedia::error::*;

#[test]
fn small_plain_file_to_sink() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(
        &emu,
        json!({"size": 1000 * 3 + 7, "seed": 1, "filename": "a.bin"}),
    );
    let c = client(
        &emu,
        ClientOpts {
            chunk: 1024,
            ..Default::default()
        },
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    assert!(got.in_order);
    assert_eq!(got.size, want.len() as u64);
    assert_eq!(got.filename.as_deref(), Some("a.bin"));
    assert_eq!(got.errmsg, "");
    assert_aligned(&ranges(&emu, &id), 1024, want.len() as u64);
    // 3007 bytes in chunks of 1024: exactly 3 requests.
    assert_eq!(ranges(&emu, &id).len(), 3);
}

#[test]
fn chunks_and_transfers_reuse_keep_alive_connections() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 1024 * 1024, "seed": 21}));
    let (small, small_want) = add_media(&emu, json!({"size": 100 * 1024, "seed": 22}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 64 * 1024,
            ..Default::default()
        },
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert!(got.data == want);
    for _ in 0..20 {
        assert!(download_sink(&c, &small, 0).data == small_want);
    }
    let s = stats(&emu);
    let requests = s["requests"]["media/get"].as_u64().unwrap_or(0);
    assert_eq!(requests, 16 + 40);
    assert_eq!(s["connections_opened"].as_u64(), Some(1), "{s}");
}

/// Bodies of plain-http answers are read straight from the socket once
/// ureq's buffer is drained (src/tcp.rs `PlainBody`); ureq never sees their
/// end, so the connection must come back from our own parking, not ureq's
/// pool: every request of these downloads, to a sink and to a file, goes
/// over one connection, and every byte is right.
#[test]
fn bodies_read_to_their_end_leave_their_connection_reusable() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 3 * 1024 * 1024 + 5, "seed": 23}));
    let (small, small_want) = add_media(&emu, json!({"size": 100 * 1024, "seed": 24}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 1024 * 1024,
            ..Default::default()
        },
    );
    let dir = tempdir("past-ureq");
    for round in 0..2 {
        let got = download_sink(&c, &id, 0);
        assert_eq!(got.rc, 0, "{}", got.errmsg);
        assert!(got.in_order);
        assert!(got.data == want, "round {round}: sink content differs");
        assert!(download_sink(&c, &small, 0).data == small_want);
        let path = dir.join(format!("m{round}.bin"));
        let Got {
            rc, errmsg: msg, ..
        } = download_path(&c, &id, &path);
        assert_eq!(rc, 0, "{msg}");
        assert!(
            std::fs::read(&path).unwrap() == want,
            "round {round}: file differs"
        );
    }
    let s = stats(&emu);
    assert_eq!(
        s["requests"]["media/get"].as_u64(),
        Some(2 * (4 + 1 + 4)),
        "{s}"
    );
    assert_eq!(s["connections_opened"].as_u64(), Some(1), "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A connection that fails in the middle of a body is never
/// parked for reuse: the retry resumes on a new one, with the right bytes.
#[test]
fn a_connection_cut_mid_body_is_not_reused() {
    let emu = start(Platform::WeCom);
    let (c, id, want) = media_cut_mid_body(&emu, 25);
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert!(got.in_order);
    assert!(got.data == want, "content differs");
    let s = stats(&emu);
    assert_eq!(s["faults_fired"].as_u64(), Some(1), "{s}");
    assert_eq!(s["connections_opened"].as_u64(), Some(2), "{s}");
    // The next download reuses the resumed request's connection.
    assert!(download_sink(&c, &id, 0).data == want);
    assert_eq!(stats(&emu)["connections_opened"].as_u64(), Some(2));
}

/// A server that stops sending in the middle of a body
/// meets the io timeout there too.
#[test]
fn a_stall_mid_body_times_out() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 1024 * 1024, "seed": 26}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 1024 * 1024,
            io_ms: 400,
            attempts: 1,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "stall", "after_bytes": 512 * 1024, "ms": 5000, "media_id": id, "count": 1}),
    );
    let t0 = Instant::now();
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, WXM_E_TIMEOUT, "{}", got.errmsg);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(
        got.data.len() >= 256 * 1024,
        "{} bytes before the stall",
        got.data.len()
    );
}

#[test]
fn empty_and_tiny_media() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    for size in [0u64, 1, 15, 16, 17] {
        let (id, want) = add_media(&emu, json!({"size": size, "seed": size}));
        let got = download_sink(&c, &id, 0);
        assert_eq!(got.rc, 0, "size {size}: {}", got.errmsg);
        assert_eq!(got.data, want);
    }
}

#[test]
fn unaligned_start_skips_the_head() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 5000, "seed": 2}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 512,
            ..Default::default()
        },
    );
    let got = download_sink(&c, &id, 1001);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.first_offset, Some(1001));
    assert_eq!(got.data, want[1001..]);
    let rs = ranges(&emu, &id);
    assert_eq!(rs[0].0, 992);
    assert_aligned(&rs, 512, 5000);
}

#[test]
fn start_at_the_end_delivers_nothing_and_beyond_is_invalid() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 100, "seed": 2}));
    let c = client(&emu, ClientOpts::default());
    let got = download_sink(&c, &id, 100);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert!(got.data.is_empty());
    let got = download_sink(&c, &id, 500);
    assert_ne!(got.rc, 0);
}

#[test]
fn encrypted_media_need_aligned_chunks_and_get_them() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 10_007, "seed": 3, "encrypted": true}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 48 * 16,
            ..Default::default()
        },
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    // Resuming inside a block still works: the floor is fetched.
    let got = download_sink(&c, &id, 4099);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want[4099..]);
    assert_aligned(&ranges(&emu, &id), 48 * 16, 10_007);
}

#[test]
fn over_20_mib_is_fetched_in_chunks() {
    let emu = start(Platform::WeCom);
    let size = 20 * 1024 * 1024 + 4099;
    let (id, want) = add_media(&emu, json!({"size": size, "seed": 4, "async": true}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 20 * 1024 * 1024,
            ..Default::default()
        },
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert!(got.data == want, "content differs");
    let rs = ranges(&emu, &id);
    assert_eq!(rs.len(), 2);
    assert_aligned(&rs, 20 * 1024 * 1024, size);
}

#[test]
fn errcodes_pass_through_without_the_token() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let got = download_sink(&c, "no-such-media", 0);
    assert_eq!(got.rc, 40007);
    assert!(got.data.is_empty());
    assert!(!got.errmsg.contains(TOKEN), "{}", got.errmsg);
    assert!(got.errmsg.contains("40007"), "{}", got.errmsg);
    // SAFETY: static text.
    let last = text(wxmedia::ffi::wxm_last_errmsg()).unwrap_or_default();
    assert!(!last.contains(TOKEN));
}

#[test]
fn official_account_errors_as_text_plain_too() {
    let emu = start(Platform::Official);
    let c = client(
        &emu,
        ClientOpts {
            platform: 3,
            ..Default::default()
        },
    );
    let got = download_sink(&c, "missing", 0);
    assert_eq!(got.rc, 40007, "{}", got.errmsg);
}

#[test]
fn a_file_whose_bytes_are_a_json_errcode_is_a_file() {
    let emu = start(Platform::WeCom);
    let body = br#"{"errcode":40007,"errmsg":"invalid media_id"}"#;
    let (id, want) = add_media(
        &emu,
        json!({"data_b64": base64_encode(body), "filename": "err.json", "content_type": "application/json"}),
    );
    let c = client(&emu, ClientOpts::default());
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    // Even when the server ignores Range and answers a plain 200.
    fault(&emu, json!({"kind": "ignore_range", "media_id": id}));
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
}

#[test]
fn chinese_filename_from_filename_star() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(
        &emu,
        json!({"size": 64, "seed": 5, "filename": "会议纪要 2026.docx"}),
    );
    let c = client(&emu, ClientOpts::default());
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.filename.as_deref(), Some("会议纪要 2026.docx"));
}

#[test]
fn official_video_follows_video_url() {
    let emu = start(Platform::Official);
    let (id, want) = add_media(
        &emu,
        json!({"size": 70_001, "seed": 6, "video": true, "kind": "video", "filename": "v.mp4"}),
    );
    let c = client(
        &emu,
        ClientOpts {
            platform: 3,
            chunk: 16 * 1024,
            ..Default::default()
        },
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    let url = got.video_url.expect("video_url reported");
    assert!(url.starts_with("http://"), "{url}");
    assert!(!url.contains(TOKEN));
}

#[test]
fn ignored_range_is_handled_with_resume() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 300_000, "seed": 7}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 64 * 1024,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "ignore_range", "media_id": id, "count": 1}),
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    let got = download_sink(&c, &id, 12_345);
    assert_eq!(got.rc, 0);
    assert_eq!(got.data, want[12_345..]);
}

/// Each transient fault is retried and never delivers a byte twice or a
/// wrong byte.
#[test]
fn transient_faults_are_retried() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 200_000, "seed": 8}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 32 * 1024,
            attempts: 5,
            ..Default::default()
        },
    );
    let faults = [
        json!({"kind": "reset", "after_bytes": 1000}),
        json!({"kind": "errcode", "errcode": -1}),
        json!({"kind": "errcode", "errcode": 45033}),
        json!({"kind": "http_status", "status": 503}),
        json!({"kind": "http_status", "status": 500}),
        json!({"kind": "short_body", "after_bytes": 100}),
        json!({"kind": "wrong_content_range"}),
        json!({"kind": "stall", "after_bytes": 10, "ms": 300}),
        json!({"kind": "slow_headers", "ms": 300}),
    ];
    for f in faults {
        reset(&emu);
        let mut f = f.clone();
        f["media_id"] = json!(id);
        f["count"] = json!(2);
        fault(&emu, f.clone());
        let got = download_sink(&c, &id, 0);
        assert_eq!(got.rc, 0, "fault {f}: {}", got.errmsg);
        assert!(got.in_order, "fault {f}");
        assert!(got.data == want, "fault {f}: content differs");
        assert!(
            stats(&emu)["faults_fired"].as_u64().unwrap_or(0) >= 1,
            "fault {f} never fired"
        );
    }
}

#[test]
fn persistent_faults_end_with_a_clear_code() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 10_000, "seed": 9}));
    let c = client(
        &emu,
        ClientOpts {
            attempts: 3,
            ..Default::default()
        },
    );
    for (f, code) in [
        (json!({"kind": "errcode", "errcode": -1}), -1),
        (
            json!({"kind": "http_status", "status": 502}),
            WXM_E_HTTP_STATUS,
        ),
        (json!({"kind": "reset", "after_bytes": 0}), WXM_E_NETWORK),
        (json!({"kind": "wrong_content_range"}), WXM_E_PROTOCOL),
        (json!({"kind": "errcode", "errcode": 40058}), 40058),
    ] {
        reset(&emu);
        let mut f = f.clone();
        f["media_id"] = json!(id);
        f["count"] = json!(10);
        fault(&emu, f.clone());
        let got = download_sink(&c, &id, 0);
        assert_eq!(got.rc, code, "fault {f}: {}", got.errmsg);
        assert!(got.data.is_empty(), "fault {f}: bytes reached the sink");
        let n = stats(&emu)["requests"]["media/get"].as_u64().unwrap_or(0);
        if code == 40058 {
            assert_eq!(n, 1, "a final errcode is not retried");
        } else {
            assert_eq!(n, 3, "fault {f}: attempts");
        }
    }
}

#[test]
fn io_timeout_on_a_stall_then_retry() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 50_000, "seed": 10}));
    let c = client(
        &emu,
        ClientOpts {
            io_ms: 300,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "stall", "media_id": id, "after_bytes": 100, "ms": 3000}),
    );
    let t = Instant::now();
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "waited out the stall: {:?}",
        t.elapsed()
    );
}

#[test]
fn token_expiry_mid_transfer_with_credentials_refreshes_once() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 200_000, "seed": 11}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 32 * 1024,
            ..ClientOpts::credentialed()
        },
    );
    fault(
        &emu,
        json!({"kind": "token_expire", "media_id": id, "after_bytes": 5000}),
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    assert_eq!(stats(&emu)["token_fetches"].as_u64(), Some(2));
    assert!(!got.errmsg.contains("wxm-secret"));
}

#[test]
fn token_expiry_with_a_static_token_returns_the_errcode() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 200_000, "seed": 12}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 32 * 1024,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "token_expire", "media_id": id, "after_bytes": 5000}),
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 42001, "{}", got.errmsg);
    assert!(!got.errmsg.contains(TOKEN));
}

#[test]
fn wrong_credentials_answer_the_token_errcode() {
    let emu = start(Platform::WeCom);
    let c = client(
        &emu,
        ClientOpts {
            token: None,
            credentials: Some((CORPID.into(), "not-the-secret".into())),
            ..Default::default()
        },
    );
    let got = download_sink(&c, "x", 0);
    assert!(
        got.rc == 40001 || got.rc == 40013,
        "{} {}",
        got.rc,
        got.errmsg
    );
    assert!(!got.errmsg.contains("not-the-secret"), "{}", got.errmsg);
}

#[test]
fn no_token_no_credentials() {
    let emu = start(Platform::WeCom);
    let c = client(
        &emu,
        ClientOpts {
            token: None,
            ..Default::default()
        },
    );
    assert_eq!(download_sink(&c, "x", 0).rc, WXM_E_NO_TOKEN);
}

#[test]
fn official_account_credentials_use_stable_token() {
    let emu = start(Platform::Official);
    let (id, want) = add_media(&emu, json!({"size": 4000, "seed": 13}));
    let c = client(
        &emu,
        ClientOpts {
            platform: 3,
            ..ClientOpts::credentialed()
        },
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    assert_eq!(stats(&emu)["requests"]["stable_token"].as_u64(), Some(1));
}

#[test]
fn official_account_classic_token_api() {
    let emu = start(Platform::Official);
    let (id, want) = add_media(&emu, json!({"size": 4000, "seed": 13}));
    let c = client(
        &emu,
        ClientOpts {
            platform: 3,
            token_api: wxmedia::config::WXM_TOKEN_API_CLASSIC,
            ..ClientOpts::credentialed()
        },
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    let s = stats(&emu);
    assert_eq!(s["requests"]["token"].as_u64(), Some(1), "{s}");
    assert_eq!(s["requests"]["stable_token"].as_u64().unwrap_or(0), 0);
}

#[test]
fn parallel_download_is_in_order_on_the_calling_thread() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 2 * 1024 * 1024 + 77, "seed": 14}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 128 * 1024,
            parallelism: 4,
            ..Default::default()
        },
    );
    // Slow every answer a little so requests overlap.
    fault(
        &emu,
        json!({"kind": "slow_headers", "media_id": id, "ms": 50, "count": 100}),
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert!(got.in_order);
    assert!(got.data == want);
    assert_eq!(got.sink_threads, vec![std::thread::current().id()]);
    assert!(
        got.max_slice <= 1024 * 1024,
        "a sink call got {} bytes",
        got.max_slice
    );
    let s = stats(&emu);
    assert!(
        s["max_concurrent_connections"].as_u64().unwrap_or(0) >= 3,
        "{s}"
    );
    assert_aligned(&ranges(&emu, &id), 128 * 1024, want.len() as u64);
}

#[test]
fn parallel_sink_calls_are_at_most_one_mib() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 9 * 1024 * 1024 + 5, "seed": 23}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 4 * 1024 * 1024,
            parallelism: 2,
            ..Default::default()
        },
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert!(got.data == want && got.in_order);
    assert!(
        got.max_slice <= 1024 * 1024,
        "a sink call got {} bytes",
        got.max_slice
    );
}

#[test]
fn parallel_with_faults_and_unaligned_start() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(
        &emu,
        json!({"size": 1024 * 1024 + 3, "seed": 15, "encrypted": true}),
    );
    let c = client(
        &emu,
        ClientOpts {
            chunk: 64 * 1024,
            parallelism: 3,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "reset", "media_id": id, "after_bytes": 777, "count": 3}),
    );
    fault(
        &emu,
        json!({"kind": "errcode", "errcode": -1, "media_id": id, "count": 2}),
    );
    let got = download_sink(&c, &id, 333);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert!(got.data == want[333..]);
    assert_aligned(&ranges(&emu, &id), 64 * 1024, want.len() as u64);
}

#[test]
fn parallel_workers_survive_a_server_that_ignores_range() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 600_000, "seed": 19}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 64 * 1024,
            parallelism: 4,
            ..Default::default()
        },
    );
    // Some answers (the first chunk's and workers') come whole, from byte 0.
    fault(
        &emu,
        json!({"kind": "ignore_range", "media_id": id, "count": 3}),
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert!(got.in_order);
    assert!(got.data == want);
    // The same after the first chunk: workers get whole bodies.
    reset(&emu);
    fault(
        &emu,
        json!({"kind": "slow_headers", "media_id": id, "ms": 1, "count": 1}),
    );
    fault(
        &emu,
        json!({"kind": "ignore_range", "media_id": id, "count": 4}),
    );
    let got = download_sink(&c, &id, 100_001);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert!(got.data == want[100_001..]);
}

#[test]
fn sink_abort() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 100_000, "seed": 16}));
    for parallelism in [1, 3] {
        let c = client(
            &emu,
            ClientOpts {
                chunk: 16 * 1024,
                parallelism,
                ..Default::default()
            },
        );
        let got = download_sink_capped(&c, &id, 0, 19_999);
        assert_eq!(got.rc, WXM_E_ABORTED, "{}", got.errmsg);
    }
}

#[test]
fn cancel_from_another_thread_during_a_stall() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 100_000, "seed": 17}));
    for parallelism in [1u32, 2] {
        reset(&emu);
        let c = client(
            &emu,
            ClientOpts {
                io_ms: 60_000,
                parallelism,
                chunk: 16 * 1024,
                ..Default::default()
            },
        );
        fault(
            &emu,
            json!({"kind": "stall", "media_id": id, "after_bytes": 10, "ms": 30_000, "count": 10}),
        );
        // SAFETY: the handle outlives both threads' use of it.
        unsafe {
            let d = wxmedia::ffi::download::wxm_download_new(c.0, cs(&id).as_ptr());
            let dp = d as usize;
            let canceller = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(400));
                wxmedia::ffi::download::wxm_download_cancel(dp as *const _);
                Instant::now()
            });
            unsafe extern "C" fn sink(
                _: *mut std::ffi::c_void,
                _: u64,
                _: *const u8,
                _: usize,
            ) -> i32 {
                0
            }
            let rc =
                wxmedia::ffi::download::wxm_download_to_sink(d, Some(sink), std::ptr::null_mut());
            let returned = Instant::now();
            let cancelled_at = canceller.join().expect("canceller");
            assert_eq!(rc, WXM_E_CANCELLED);
            assert!(returned.duration_since(cancelled_at) < Duration::from_millis(1500));
            // A cancelled handle stays cancelled.
            assert_eq!(
                wxmedia::ffi::download::wxm_download_to_sink(d, Some(sink), std::ptr::null_mut()),
                WXM_E_CANCELLED
            );
            wxmedia::ffi::download::wxm_download_free(d);
        }
    }
}

#[test]
fn eight_threads_share_one_client() {
    let emu = start(Platform::WeCom);
    let media: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| add_media(&emu, json!({"size": 150_000 + i * 1000, "seed": 100 + i})))
        .collect();
    let c = client(
        &emu,
        ClientOpts {
            chunk: 16 * 1024,
            parallelism: 2,
            ..Default::default()
        },
    );
    std::thread::scope(|s| {
        for (id, want) in &media {
            let c = &c;
            s.spawn(move || {
                for _ in 0..3 {
                    let got = download_sink(c, id, 0);
                    assert_eq!(got.rc, 0, "{}", got.errmsg);
                    assert!(&got.data == want);
                }
            });
        }
    });
}

#[test]
fn expired_media_answer_40007() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 100, "seed": 18}));
    let c = client(&emu, ClientOpts::default());
    assert_eq!(download_sink(&c, &id, 0).rc, 0);
    admin(
        &emu,
        "POST",
        "/__admin/clock",
        json!({"advance_secs": 3 * 24 * 3600 + 1}),
    );
    assert_eq!(download_sink(&c, &id, 0).rc, 40007);
}

#[test]
fn transfers_outlive_repeated_token_invalidations() {
    // Many threads on one client while every token is invalidated, again
    // and again: a transfer refreshes whenever it moved bytes since its
    // last refresh, so none of them fails with 42001.
    let emu = start(Platform::WeCom);
    let size = 6 * 1024 * 1024 + 5;
    let (id, want) = add_media(&emu, json!({"size": size, "seed": 31}));
    fault(
        &emu,
        json!({"kind": "throttle", "media_id": id, "bytes_per_sec": 1_500_000, "count": 100_000}),
    );
    let c = client(
        &emu,
        ClientOpts {
            chunk: 256 * 1024,
            parallelism: 2,
            attempts: 4,
            backoff_ms: 10,
            ..ClientOpts::credentialed()
        },
    );
    let done = std::sync::atomic::AtomicBool::new(false);
    let (rounds, results) = std::thread::scope(|s| {
        let invalidator = s.spawn(|| {
            let mut rounds = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) && rounds < 12 {
                std::thread::sleep(std::time::Duration::from_millis(250));
                admin(&emu, "POST", "/__admin/expire_token", json!({"all": true}));
                rounds += 1;
            }
            rounds
        });
        let workers: Vec<_> = (0..12)
            .map(|_| s.spawn(|| download_sink(&c, &id, 0)))
            .collect();
        let results: Vec<Got> = workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (invalidator.join().expect("invalidator"), results)
    });
    assert!(rounds >= 2, "tokens were invalidated {rounds} times");
    for (i, got) in results.iter().enumerate() {
        assert_eq!(got.rc, 0, "transfer {i}: {}", got.errmsg);
        assert!(got.data == want, "transfer {i}: wrong bytes");
    }
    let fetches = stats(&emu)["token_fetches"].as_u64().unwrap_or(0);
    assert!(
        fetches >= 3,
        "{fetches} token fetches for {rounds} invalidations"
    );
}
