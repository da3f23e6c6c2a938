//! Uploads through the C ABI against the emulator: every type per
//! platform, from a path and from a reader, local rejections, faults.

use crate::support::*;
use serde_json::json;
use wxmedia::error::*;

fn uploads(emu: &Emulator) -> u64 {
    stats(emu)["requests"]["media/upload"].as_u64().unwrap_or(0)
}

fn round_trip(c: &TestClient, media_id: &str, want: &[u8]) -> Got {
    let got = download_sink(c, media_id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert!(got.data == want, "uploaded and downloaded bytes differ");
    got
}

#[test]
fn every_wecom_type_from_path_and_reader() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let dir = tempdir("up-wecom");
    let cases: [(&str, &[u8], &str); 5] = [
        ("image", JPEG_HEAD, "照片.jpg"),
        ("image", PNG_HEAD, "shot.png"),
        ("voice", AMR_HEAD, "voice.amr"),
        ("video", MP4_HEAD, "clip.mp4"),
        ("file", b"%PDF-1.7\n", "季度报告.pdf"),
    ];
    for (i, (kind, head, name)) in cases.iter().enumerate() {
        let data = media_bytes(head, 100_000 + i * 17, i as u64);
        let path = dir.join(name);
        std::fs::write(&path, &data).expect("write");
        let up = upload_path(&c, kind, &path, None);
        assert_eq!(up.rc, 0, "{kind} {name}: {}", up.errmsg);
        assert_eq!(up.kind.as_deref(), Some(*kind));
        assert!(
            up.created_at > 1_000_000_000,
            "created_at {}",
            up.created_at
        );
        let id = up.media_id.expect("media_id");
        let got = round_trip(&c, &id, &data);
        assert_eq!(
            got.filename.as_deref(),
            Some(*name),
            "the raw UTF-8 name survives"
        );

        let up = upload_reader(&c, kind, &data, data.len() as u64, Some(name), None);
        assert_eq!(up.rc, 0, "reader {kind}: {}", up.errmsg);
        round_trip(&c, &up.media_id.expect("media_id"), &data);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn official_account_types_and_numeric_created_at() {
    let emu = start(Platform::Official);
    let c = client(
        &emu,
        ClientOpts {
            platform: 3,
            ..Default::default()
        },
    );
    for (kind, head, len) in [
        ("image", b"GIF89a\x01\x00\x01\x00" as &[u8], 5000usize),
        ("voice", b"ID3\x03\x00\x00\x00\x00\x00\x00", 5000),
        ("thumb", JPEG_HEAD, 60 * 1024),
        ("video", MP4_HEAD, 50_000),
    ] {
        let data = media_bytes(head, len, 9);
        let up = upload_reader(&c, kind, &data, len as u64, Some("x"), None);
        assert_eq!(up.rc, 0, "{kind}: {}", up.errmsg);
        assert!(up.created_at > 1_000_000_000);
        assert!(up.media_id.is_some());
    }
}

#[test]
fn local_rejections_send_nothing() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let jpg = |n| media_bytes(JPEG_HEAD, n, 1);
    let cases: Vec<(&str, Vec<u8>, i32)> = vec![
        ("thumb", jpg(1000), 40004),
        ("sticker", jpg(1000), 40004),
        ("image", Vec::new(), 44001),
        ("image", jpg(5), 40006),
        ("image", media_bytes(b"GIF89a", 1000, 1), 40005),
        ("image", b"plain text, not an image".to_vec(), 40005),
        ("voice", media_bytes(MP4_HEAD, 1000, 1), 40005),
        ("image", jpg(10 * 1024 * 1024 + 1), 40009),
        (
            "voice",
            media_bytes(AMR_HEAD, 2 * 1024 * 1024 + 1, 1),
            40010,
        ),
        (
            "video",
            media_bytes(MP4_HEAD, 10 * 1024 * 1024 + 1, 1),
            40011,
        ),
        ("file", vec![7u8; 20 * 1024 * 1024 + 1], 40006),
    ];
    for (kind, data, code) in cases {
        let up = upload_reader(&c, kind, &data, data.len() as u64, Some("f"), None);
        assert_eq!(up.rc, code, "{kind} of {} bytes: {}", data.len(), up.errmsg);
        assert!(!up.errmsg.is_empty());
    }
    assert_eq!(uploads(&emu), 0, "a rejected upload reached the server");
    // The large-file message points at the async upload.
    let up = upload_reader(
        &c,
        "file",
        &vec![7u8; 20 * 1024 * 1024 + 1],
        20 * 1024 * 1024 + 1,
        Some("f"),
        None,
    );
    assert!(up.errmsg.contains("upload_by_url"), "{}", up.errmsg);
    // Mini Program: images only.
    let emu_mp = start(Platform::MiniProgram);
    let mp = client(
        &emu_mp,
        ClientOpts {
            platform: 4,
            ..Default::default()
        },
    );
    let up = upload_reader(
        &mp,
        "voice",
        &media_bytes(AMR_HEAD, 100, 1),
        100,
        None,
        None,
    );
    assert_eq!(up.rc, 40004);
    let up = upload_reader(
        &mp,
        "image",
        &media_bytes(PNG_HEAD, 100, 1),
        100,
        None,
        None,
    );
    assert_eq!(up.rc, 0, "{}", up.errmsg);
}

#[test]
fn limits_can_be_raised_for_both_sides() {
    let emu = Emulator::start(Options {
        access_tokens: vec![TOKEN.into()],
        limits: [("file".to_string(), 64 * 1024 * 1024)]
            .into_iter()
            .collect(),
        ..Options::default()
    })
    .expect("emulator");
    // SAFETY: config handle used and freed on this thread.
    let c = unsafe {
        use wxmedia::ffi::*;
        let cfg = wxm_config_new(1);
        assert_eq!(
            wxm_config_set_base_url(cfg, cs(&emu.base_url()).as_ptr()),
            0
        );
        assert_eq!(wxm_config_set_access_token(cfg, cs(TOKEN).as_ptr()), 0);
        assert_eq!(
            wxm_config_set_limit(cfg, cs("file").as_ptr(), 64 * 1024 * 1024),
            0
        );
        assert_eq!(
            wxm_config_set_limit(cfg, cs("thumb").as_ptr(), 1),
            WXM_E_INVALID_ARG
        );
        client_from_config(cfg)
    };
    let dir = tempdir("limit");
    let path = dir.join("big.bin");
    let data = generated(77, 25 * 1024 * 1024);
    std::fs::write(&path, &data).expect("write");
    let up = upload_path(&c, "file", &path, None);
    assert_eq!(up.rc, 0, "{}", up.errmsg);
    round_trip(&c, &up.media_id.expect("id"), &data);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn path_uploads_are_retried_on_transient_failures() {
    let emu = start(Platform::WeCom);
    let c = client(
        &emu,
        ClientOpts {
            attempts: 4,
            ..Default::default()
        },
    );
    let dir = tempdir("up-retry");
    let path = dir.join("r.pdf");
    let data = media_bytes(b"%PDF", 300_000, 3);
    std::fs::write(&path, &data).expect("write");
    for f in [
        json!({"kind": "errcode", "errcode": -1}),
        json!({"kind": "http_status", "status": 503}),
        json!({"kind": "errcode", "errcode": 45033}),
    ] {
        reset(&emu);
        let mut f = f.clone();
        f["endpoint"] = json!("media/upload");
        f["count"] = json!(2);
        fault(&emu, f.clone());
        let up = upload_path(&c, "file", &path, None);
        assert_eq!(up.rc, 0, "{f}: {}", up.errmsg);
        assert_eq!(uploads(&emu), 3, "{f}");
        round_trip(&c, &up.media_id.expect("id"), &data);
    }
    // A final errcode is not retried.
    reset(&emu);
    fault(
        &emu,
        json!({"kind": "errcode", "errcode": 40058, "endpoint": "media/upload"}),
    );
    let up = upload_path(&c, "file", &path, None);
    assert_eq!(up.rc, 40058);
    assert_eq!(uploads(&emu), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn token_refresh_on_upload_with_credentials() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::credentialed());
    let dir = tempdir("up-token");
    let path = dir.join("t.txt");
    std::fs::write(&path, b"hello token world").expect("write");
    assert_eq!(upload_path(&c, "file", &path, None).rc, 0);
    admin(&emu, "POST", "/__admin/expire_token", json!({"all": true}));
    let up = upload_path(&c, "file", &path, None);
    assert_eq!(up.rc, 0, "{}", up.errmsg);
    assert_eq!(stats(&emu)["token_fetches"].as_u64(), Some(2));
    // A reader whose bytes all fit in the sniffed head can be sent again;
    // a longer one cannot, and answers the errcode.
    admin(&emu, "POST", "/__admin/expire_token", json!({"all": true}));
    let up = upload_reader(&c, "file", b"short body", 10, Some("s.txt"), None);
    assert_eq!(up.rc, 0, "{}", up.errmsg);
    admin(&emu, "POST", "/__admin/expire_token", json!({"all": true}));
    let long = media_bytes(b"%PDF", 50_000, 1);
    let up = upload_reader(&c, "file", &long, 50_000, Some("l.pdf"), None);
    assert_eq!(up.rc, 42001, "{}", up.errmsg);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn reader_errors() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let data = media_bytes(b"%PDF", 100_000, 4);
    // The reader stops the upload.
    let up = upload_reader(
        &c,
        "file",
        &data,
        data.len() as u64,
        Some("a.pdf"),
        Some(50_000),
    );
    assert_eq!(up.rc, WXM_E_ABORTED, "{}", up.errmsg);
    // The reader ends before the announced length.
    let up = upload_reader(&c, "file", &data[..1000], 100_000, Some("a.pdf"), None);
    assert_eq!(up.rc, WXM_E_IO, "{}", up.errmsg);
    // The reader has more than announced: refused, not cut short.
    let up = upload_reader(&c, "file", &data, 60_000, Some("a.pdf"), None);
    assert_eq!(up.rc, WXM_E_IO, "{}", up.errmsg);
    assert!(up.errmsg.contains("more than"), "{}", up.errmsg);
    assert!(up.media_id.is_none());
}

#[test]
fn a_reader_upload_hit_by_a_5xx_is_not_retried() {
    // An emulator of its own: the aborted uploads above may still be read
    // by the emulator after they failed here, and would take the fault.
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let data = media_bytes(b"%PDF", 100_000, 4);
    // A reader upload hit by a 5xx after its bytes were read is not retried.
    fault(
        &emu,
        json!({"kind": "http_status", "status": 503, "endpoint": "media/upload"}),
    );
    let before = uploads(&emu);
    let up = upload_reader(&c, "file", &data, data.len() as u64, Some("a.pdf"), None);
    assert_eq!(up.rc, WXM_E_HTTP_STATUS, "{}", up.errmsg);
    assert_eq!(uploads(&emu) - before, 1);
}

#[test]
fn missing_source_and_bad_path() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    // SAFETY: handles live for the calls.
    unsafe {
        use wxmedia::ffi::upload::*;
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        assert_eq!(wxm_upload_run(u), WXM_E_INVALID_ARG);
        assert_eq!(wxm_upload_set_path(u, cs("/no/such/file").as_ptr()), 0);
        assert_eq!(wxm_upload_run(u), WXM_E_IO);
        wxm_upload_free(u);
    }
}

#[test]
fn an_upload_whose_answer_is_lost_is_sent_again_and_may_create_a_second_media() {
    // Documented: media/upload is repeated after a lost answer, since a
    // second temporary media costs nothing (nobody references it, it
    // expires in 3 days) while failing the upload would cost the host one.
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let dir = tempdir("up-lost");
    let data = media_bytes(JPEG_HEAD, 200_000, 9);
    let path = dir.join("lost.jpg");
    std::fs::write(&path, &data).expect("write");
    fault(
        &emu,
        json!({"kind": "drop_after_body", "endpoint": "media/upload"}),
    );
    let up = upload_path(&c, "image", &path, None);
    assert_eq!(up.rc, 0, "{}", up.errmsg);
    assert_eq!(uploads(&emu), 2, "sent again after the lost answer");
    assert_eq!(
        stats(&emu)["uploads"].as_u64(),
        Some(2),
        "the emulator stored both"
    );
    round_trip(&c, &up.media_id.expect("media_id"), &data);
}
