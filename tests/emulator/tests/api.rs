//! The WeChat endpoints: tokens, media/get with Range, errcodes, video_url, jssdk.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

#[test]
fn wecom_gettoken_and_errors() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    let r = get(
        a,
        "/cgi-bin/gettoken?corpid=wxm-corp&corpsecret=wxm-secret",
        &[],
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["expires_in"], 7200);
    let tok = v["access_token"].as_str().unwrap().to_string();
    // WeCom hands out the same token while it is valid.
    let v2 = get(
        a,
        "/cgi-bin/gettoken?corpid=wxm-corp&corpsecret=wxm-secret",
        &[],
    )
    .json();
    assert_eq!(v2["access_token"].as_str(), Some(tok.as_str()));

    let r = get(
        a,
        "/cgi-bin/gettoken?corpid=other&corpsecret=wxm-secret",
        &[],
    );
    assert_eq!((r.status, r.errcode()), (200, 40013));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(r.header("error-code").as_deref(), Some("40013"));
    assert!(r.header("error-msg").is_some());
    assert_eq!(
        get(a, "/cgi-bin/gettoken?corpid=wxm-corp&corpsecret=nope", &[]).errcode(),
        40001
    );
    assert_eq!(get(a, "/cgi-bin/gettoken", &[]).errcode(), 41002);

    // The issued token works for media/get (40007: it got past the token check).
    add_generated(a, "m", 100, 1, json!({}));
    let r = get(
        a,
        &format!("/cgi-bin/media/get?access_token={tok}&media_id=m"),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, generated(1, 0, 100));
    assert_eq!(stats(a)["token_fetches"], 5);
}

#[test]
fn official_tokens_and_text_plain_errors() {
    let emu = start_with(Options {
        platform: Platform::Official,
        corpid: "wxAPP".into(),
        secret: "S".into(),
        ..Default::default()
    });
    let a = emu.addr();
    let v = get(
        a,
        "/cgi-bin/token?grant_type=client_credential&appid=wxAPP&secret=S",
        &[],
    )
    .json();
    assert!(v.get("errcode").is_none(), "{v}");
    assert_eq!(v["expires_in"], 7200);
    let t1 = v["access_token"].as_str().unwrap().to_string();

    let body = json!({"grant_type":"client_credential","appid":"wxAPP","secret":"S"}).to_string();
    let s1 = post(a, "/cgi-bin/stable_token", &[], body.as_bytes()).json();
    let s2 = post(a, "/cgi-bin/stable_token", &[], body.as_bytes()).json();
    assert_eq!(s1["access_token"], s2["access_token"]);
    assert_ne!(s1["access_token"].as_str(), Some(t1.as_str()));
    let forced =
        json!({"grant_type":"client_credential","appid":"wxAPP","secret":"S","force_refresh":true})
            .to_string();
    let s3 = post(a, "/cgi-bin/stable_token", &[], forced.as_bytes()).json();
    assert_ne!(s3["access_token"], s1["access_token"]);

    let r = post(a, "/cgi-bin/stable_token", &[], b"{not json");
    assert_eq!(r.errcode(), 47001);
    let bad = json!({"grant_type":"client_credential","appid":"wxAPP","secret":"x"}).to_string();
    let r = post(a, "/cgi-bin/stable_token", &[], bad.as_bytes());
    assert_eq!((r.status, r.errcode()), (200, 40001));
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    assert!(r.header("error-code").is_none());
    assert_eq!(
        get(a, "/cgi-bin/token?grant_type=x&appid=wxAPP&secret=S", &[]).errcode(),
        40002
    );

    let r = get(
        a,
        &format!("/cgi-bin/media/get?access_token={t1}&media_id=nope"),
        &[],
    );
    assert_eq!(r.errcode(), 40007);
    assert_eq!(stats(a)["token_fetches"], 7);
}

#[test]
fn token_checks_and_expiry() {
    let emu = start_with(Options {
        token_ttl: Duration::from_secs(100),
        access_tokens: vec!["STATIC".into()],
        ..Default::default()
    });
    let a = emu.addr();
    add_generated(a, "m", 10, 0, json!({}));
    let tok = get(
        a,
        "/cgi-bin/gettoken?corpid=wxm-corp&corpsecret=wxm-secret",
        &[],
    )
    .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let q = |t: &str| format!("/cgi-bin/media/get?access_token={t}&media_id=m");
    assert_eq!(get(a, &q(&tok), &[]).status, 200);
    assert_eq!(
        get(a, "/cgi-bin/media/get?media_id=m", &[]).errcode(),
        41001
    );
    assert_eq!(get(a, &q("unknown"), &[]).errcode(), 40001);
    admin(a, "clock", json!({"advance_secs": 101}));
    assert_eq!(get(a, &q(&tok), &[]).errcode(), 42001);
    // Static tokens do not expire with the clock, only through the admin API.
    assert_eq!(get(a, &q("STATIC"), &[]).status, 200);
    assert_eq!(get(a, &q("STATIC"), &[]).body.len(), 10);
    admin(a, "expire_token", json!({"token": "STATIC"}));
    assert_eq!(get(a, &q("STATIC"), &[]).errcode(), 42001);
    admin(a, "tokens", json!({"token": "NEW", "ttl_secs": 10}));
    assert_eq!(get(a, &q("NEW"), &[]).body.len(), 10);
    admin(a, "expire_token", json!({"all": true}));
    assert_eq!(get(a, &q("NEW"), &[]).errcode(), 42001);
    // A fresh gettoken after expiry gives a new, valid token.
    let tok2 = get(
        a,
        "/cgi-bin/gettoken?corpid=wxm-corp&corpsecret=wxm-secret",
        &[],
    )
    .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(tok2, tok);
    assert_eq!(get(a, &q(&tok2), &[]).status, 200);
}

#[test]
fn range_arithmetic() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    let size = 100_000u64;
    add_generated(a, "g", size, 99, json!({"filename": "data.bin"}));
    let p = media_get("g");
    let mut c = Conn::open(a);

    let r = c.get(&p, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length").as_deref(), Some("100000"));
    assert_eq!(r.header("accept-ranges").as_deref(), Some("bytes"));
    assert!(r.header("content-range").is_none());
    assert_eq!(r.body, generated(99, 0, size as usize));

    // Same keep-alive connection throughout.
    let cases: &[(&str, u64, u64)] = &[
        ("bytes=0-1023", 0, 1023),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=99990-", 99990, 99999),
        ("bytes=99990-200000", 99990, 99999),
        ("bytes=-16", 99984, 99999),
        ("bytes=7-7", 7, 7),
        ("bytes 5-9", 5, 9),
    ];
    for &(h, s, e) in cases {
        let r = c.get(&p, &[("Range", h)]);
        assert_eq!(r.status, 206, "{h}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {s}-{e}/{size}")),
            "{h}"
        );
        assert_eq!(r.header("content-length"), Some((e - s + 1).to_string()));
        assert_eq!(r.header("accept-ranges").as_deref(), Some("bytes"));
        assert_eq!(r.body, generated(99, s, (e - s + 1) as usize), "{h}");
        assert_eq!(
            r.header("content-disposition").as_deref(),
            Some("attachment; filename=\"data.bin\"")
        );
    }
    let r = c.get(&p, &[("Range", "bytes=100000-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range").as_deref(), Some("bytes */100000"));
    // Garbage Range is ignored: the whole media.
    let r = c.get(&p, &[("Range", "bytes=zz-1")]);
    assert_eq!((r.status, r.body.len()), (200, size as usize));

    let st = stats(a);
    let ranges = st["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1 + cases.len() + 2);
    assert_eq!(ranges[0]["header"], serde_json::Value::Null);
    assert_eq!(ranges[1]["header"], "bytes=0-1023");
    assert_eq!(
        (ranges[1]["start"].as_u64(), ranges[1]["end"].as_u64()),
        (Some(0), Some(1023))
    );
    assert_eq!(ranges[3]["start"], 99990);
    assert_eq!(ranges[3]["end"], serde_json::Value::Null);
    assert_eq!(st["media_requests"]["g"], ranges.len());
    assert_eq!(st["requests"]["media/get"], ranges.len());
    let served: u64 = size * 2 + 1024 + 1000 + 10 + 10 + 16 + 1 + 5;
    assert_eq!(st["bytes_served"], served);
}

#[test]
fn over_20mib_needs_ranges() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    let size = 20 * MIB + 1;
    add_generated(a, "big", size, 5, json!({}));
    let p = media_get("big");
    assert_eq!(get(a, &p, &[]).errcode(), 830002);
    assert_eq!(get(a, &p, &[("Range", "bytes=0-")]).errcode(), 830002);
    assert_eq!(
        get(a, &p, &[("Range", &format!("bytes=0-{}", 20 * MIB))]).errcode(),
        830002
    );
    let r = get(a, &p, &[("Range", &format!("bytes=1-{}", 20 * MIB))]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body.len() as u64, 20 * MIB);
    assert_eq!(r.body[..4096], generated(5, 1, 4096)[..]);
    let r = get(a, &p, &[("Range", "bytes=20971520-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, generated(5, 20 * MIB, 1));
    // Exactly 20 MiB is fine without Range.
    add_generated(a, "edge", 20 * MIB, 5, json!({}));
    assert_eq!(get(a, &media_get("edge"), &[]).body.len() as u64, 20 * MIB);
}

#[test]
fn encrypted_media_alignment() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    add_generated(a, "enc", 1000, 3, json!({"encrypted": true}));
    let p = media_get("enc");
    let code = |h: &str| {
        let r = get(a, &p, &[("Range", h)]);
        if r.status == 206 {
            0
        } else {
            r.errcode()
        }
    };
    assert_eq!(code("bytes=0-15"), 0);
    assert_eq!(code("bytes=16-511"), 0);
    assert_eq!(code("bytes=992-999"), 0); // the tail may be short
    assert_eq!(code("bytes=992-"), 0);
    assert_eq!(code("bytes=992-5000"), 0);
    assert_eq!(code("bytes=1-16"), 40058); // start not aligned
    assert_eq!(code("bytes=8-23"), 40058); // 8-aligned is not enough
    assert_eq!(code("bytes=24-"), 40058);
    assert_eq!(code("bytes=0-14"), 40058); // length not a multiple
    assert_eq!(code("bytes=16-100"), 40058);
    assert_eq!(code("bytes=995-999"), 40058); // tail, but start not aligned
    assert_eq!(get(a, &p, &[]).body.len(), 1000); // no Range: whole media
                                                  // Not encrypted: anything goes.
    add_generated(a, "plain", 1000, 3, json!({}));
    assert_eq!(
        get(a, &media_get("plain"), &[("Range", "bytes=1-2")]).status,
        206
    );
}

#[test]
fn media_errors_and_expiry() {
    let emu = start(Platform::Kf);
    let a = emu.addr();
    assert_eq!(get(a, &media_get("nope"), &[]).errcode(), 40007);
    assert_eq!(
        get(a, "/cgi-bin/media/get?access_token=TOK", &[]).errcode(),
        41006
    );
    add_generated(a, "m", 64, 1, json!({}));
    assert_eq!(get(a, &media_get("m"), &[]).status, 200);
    admin(a, "clock", json!({"advance_secs": 3 * 86400 - 60}));
    assert_eq!(get(a, &media_get("m"), &[]).body.len(), 64);
    admin(a, "clock", json!({"advance_secs": 120}));
    let r = get(a, &media_get("m"), &[]);
    assert_eq!(r.errcode(), 40007);
    assert_eq!(r.header("error-code").as_deref(), Some("40007"));
}

#[test]
fn content_disposition_names() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    add_generated(a, "cn", 10, 1, json!({"filename": "GMS-聊天记录.xlsx"}));
    let r = get(a, &media_get("cn"), &[]);
    let mut want =
        b"attachment; filename*=utf-8''GMS-%E8%81%8A%E5%A4%A9%E8%AE%B0%E5%BD%95.xlsx; filename=\""
            .to_vec();
    want.extend_from_slice("GMS-聊天记录.xlsx".as_bytes());
    want.push(b'"');
    assert_eq!(r.header_bytes("content-disposition"), Some(&want[..]));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    );
    assert_eq!(
        r.header("cache-control").as_deref(),
        Some("no-cache, must-revalidate")
    );
    add_generated(
        a,
        "x",
        10,
        1,
        json!({"filename": "a b.jpg", "content_type": "image/x-test"}),
    );
    let r = get(a, &media_get("x"), &[]);
    assert_eq!(
        r.header("content-disposition").as_deref(),
        Some("attachment; filename=\"a b.jpg\"")
    );
    assert_eq!(r.header("content-type").as_deref(), Some("image/x-test"));
}

#[test]
fn video_url_on_official_and_direct_on_wecom() {
    let emu = start(Platform::Official);
    let a = emu.addr();
    add_generated(a, "vid", 5000, 8, json!({"video": true}));
    let r = get(a, &media_get("vid"), &[]);
    let url = r.json()["video_url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("http://{a}/__video/vid"));
    assert!(r.header("content-disposition").is_none());
    let path = url.trim_start_matches(&format!("http://{a}"));
    let r = get(a, path, &[]);
    assert_eq!(r.body, generated(8, 0, 5000));
    let r = get(a, path, &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, generated(8, 100, 100));
    assert_eq!(get(a, "/__video/none", &[]).status, 404);
    assert_eq!(stats(a)["requests"]["video"], 3);
    // The video URL is a plain download: no 830002 there.
    add_generated(a, "bigvid", 21 * MIB, 8, json!({"video": true}));
    assert!(get(a, &media_get("bigvid"), &[]).json()["video_url"].is_string());
    let r = get(a, "/__video/bigvid", &[]);
    assert_eq!((r.status, r.body.len() as u64), (200, 21 * MIB));

    let emu = start(Platform::WeCom);
    add_generated(emu.addr(), "vid", 5000, 8, json!({"video": true}));
    let r = get(emu.addr(), &media_get("vid"), &[]);
    assert_eq!(r.body, generated(8, 0, 5000));
}

#[test]
fn jssdk_speex() {
    let emu = start(Platform::Official);
    let a = emu.addr();
    add_generated(a, "hd", 300, 2, json!({"kind": "voice"}));
    let r = get(
        a,
        "/cgi-bin/media/get/jssdk?access_token=TOK&media_id=hd",
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type").as_deref(), Some("voice/speex"));
    assert_eq!(
        r.header("content-disposition").as_deref(),
        Some("attachment; filename=\"hd.speex\"")
    );
    assert_eq!(r.body, generated(2, 0, 300));
    let r = get(
        a,
        "/cgi-bin/media/get/jssdk?access_token=TOK&media_id=zz",
        &[],
    );
    assert_eq!(r.errcode(), 40007);
    assert_eq!(stats(a)["requests"]["media/get/jssdk"], 2);
}

#[test]
fn admin_media_sources_and_info() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    let v = admin(
        a,
        "media",
        json!({"data_b64": "aGVsbG8gd29ybGQ=", "filename": "h.txt"}),
    );
    let id = v["media_id"].as_str().unwrap().to_string();
    assert_eq!(v["size"], 11);
    assert_eq!(v["sha256"], sha256_hex(b"hello world"));
    let r = get(a, &media_get(&id), &[]);
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));

    let dir = std::env::temp_dir().join(format!("wxm-emu-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("disk.png");
    std::fs::write(&f, png(3000)).unwrap();
    let v = admin(
        a,
        "media",
        json!({"media_id": "disk", "path": f.to_str().unwrap()}),
    );
    assert_eq!(v["sha256"], sha256_hex(&png(3000)));
    let r = get(a, &media_get("disk"), &[("Range", "bytes=8-15")]);
    assert_eq!(r.body, png(3000)[8..16]);
    let info = get(a, "/__admin/media/disk", &[]).json();
    assert_eq!(info["filename"], "disk.png");
    assert_eq!(info["type"], "image");
    assert_eq!(info["content_type"], "image/png");
    assert!(info["created_at"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(get(a, "/__admin/media/unknown", &[]).status, 404);

    // DELETE frees a media: it is gone for media/get and the admin API.
    let mut c = Conn::open(a);
    c.send("DELETE", "/__admin/media/disk", &[], b"");
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["deleted"], "disk");
    assert_eq!(get(a, "/__admin/media/disk", &[]).status, 404);
    assert_eq!(get(a, &media_get("disk"), &[]).errcode(), 40007);
    assert!(
        f.exists(),
        "the file a media was registered from is the caller's"
    );
    let mut c = Conn::open(a);
    c.send("DELETE", "/__admin/media/disk", &[], b"");
    assert_eq!(c.read_response().unwrap().status, 404);

    let v = admin(a, "media", json!({"size": 1000, "seed": 77}));
    assert_eq!(v["sha256"], sha256_hex(&generated(77, 0, 1000)));
    let r = post(a, "/__admin/media", &[], b"{\"nothing\":1}");
    assert_eq!(r.status, 400);
    let r = post(a, "/__admin/faults", &[], b"{\"kind\":\"nope\"}");
    assert_eq!(r.status, 400);
    let r = post(a, "/__admin/media", &[], b"garbage");
    assert_eq!(r.status, 400);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn media_dir_and_store_uploads() {
    let dir = std::env::temp_dir().join(format!("wxm-emu-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("photo.jpg"), jpeg(500)).unwrap();
    let emu = start_with(Options {
        media_dir: Some(dir.clone()),
        store_uploads: true,
        access_tokens: vec!["TOK".into()],
        ..Default::default()
    });
    let a = emu.addr();
    let r = get(a, &media_get("photo.jpg"), &[]);
    assert_eq!(r.body, jpeg(500));
    assert_eq!(r.header("content-type").as_deref(), Some("image/jpeg"));
    let r = upload(a, "image", "new.png", &png(100));
    assert_eq!(r.errcode(), 0);
    assert_eq!(std::fs::read(dir.join("new.png")).unwrap(), png(100));
    drop(emu);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reset_clears_stats_and_faults() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    add_generated(a, "m", 10, 0, json!({}));
    admin(
        a,
        "faults",
        json!({"kind": "errcode", "errcode": -1, "count": 5}),
    );
    assert_eq!(get(a, &media_get("m"), &[]).errcode(), -1);
    admin(a, "reset", json!({}));
    assert_eq!(get(a, &media_get("m"), &[]).body.len(), 10);
    let st = stats(a);
    assert_eq!(st["faults_fired"], 0);
    assert_eq!(st["requests"]["media/get"], 1);
    assert_eq!(st["ranges"].as_array().unwrap().len(), 1);
}

#[test]
fn library_admin_helpers() {
    let emu = start(Platform::MiniProgram);
    assert_eq!(emu.platform(), Platform::MiniProgram);
    assert_eq!(emu.base_url(), format!("http://{}", emu.addr()));
    let v = emu
        .admin_post("media", &json!({"media_id": "h", "size": 64, "seed": 3}))
        .unwrap();
    assert_eq!(v["size"], 64);
    assert_eq!(
        emu.admin_get("/__admin/media/h").unwrap()["sha256"],
        v["sha256"]
    );
    assert_eq!(
        get(emu.addr(), &media_get("h"), &[]).body,
        generated(3, 0, 64)
    );
    assert_eq!(emu.admin_get("stats").unwrap()["requests"]["media/get"], 1);
    assert!(emu.admin_post("faults", &json!({"kind": "bogus"})).is_err());
    assert!(emu.admin_get("media/none").is_err());
}

#[test]
fn start_and_drop_inside_another_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let emu = start(Platform::WeCom);
        emu.admin_post("media", &json!({"media_id": "m", "size": 5, "seed": 1}))
            .unwrap();
        assert_eq!(
            get(emu.addr(), &media_get("m"), &[]).body,
            generated(1, 0, 5)
        );
        drop(emu);
    });
    // A port in use is an error, not a panic.
    let emu = start(Platform::WeCom);
    let again = Emulator::start(Options {
        listen: emu.addr(),
        ..Default::default()
    });
    assert!(again.is_err());
}

#[test]
fn stats_list_every_endpoint() {
    let emu = start(Platform::WeCom);
    let st = stats(emu.addr());
    for e in [
        "media/get",
        "media/upload",
        "media/get/jssdk",
        "video",
        "gettoken",
        "token",
        "stable_token",
        "media/upload_by_url",
        "media/get_upload_by_url_result",
        "media/uploadimg",
        "img",
    ] {
        assert_eq!(st["requests"][e], 0, "{e}");
    }
    assert_eq!(st["url_fetches"], serde_json::json!([]));
    assert_eq!(
        st["jobs"],
        serde_json::json!({"processing": 0, "done": 0, "failed": 0})
    );
    assert_eq!(st["images"], 0);
    assert_eq!(st["token_fetches"], 0);
    assert_eq!(st["bytes_served"], 0);
    assert_eq!(st["ranges"].as_array().map(Vec::len), Some(0));
}
