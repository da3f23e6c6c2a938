//! The async upload: media/upload_by_url and media/get_upload_by_url_result.
//! Jobs fetch from the emulator's own /__video/{id}, from a tiny raw server
//! in the test, or from a closed port; all on 127.0.0.1.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

fn video_url(emu: &Emulator, id: &str) -> String {
    format!("http://{}/__video/{id}", emu.addr())
}

/// Registers generated media `id` and returns (url, md5).
fn source(emu: &Emulator, id: &str, size: u64, seed: u64) -> (String, String) {
    add_generated(emu.addr(), id, size, seed, json!({}));
    (
        video_url(emu, id),
        md5_hex(&generated(seed, 0, size as usize)),
    )
}

fn failed(v: &Value, code: i64) {
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["status"], 3, "{v}");
    assert_eq!(v["detail"]["errcode"], code, "{v}");
    assert!(
        v["detail"]["errmsg"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["detail"].get("media_id").is_none(), "{v}");
}

#[test]
fn polling_goes_1_then_2_and_the_media_downloads() {
    // A job delay well above the time two requests take, even on a busy machine.
    let emu = start_with(Options {
        access_tokens: vec!["TOK".into()],
        job_delay: Duration::from_millis(1000),
        ..Default::default()
    });
    let a = emu.addr();
    let size = 9 * MIB + 123;
    let (url, md5) = source(&emu, "src", size, 77);
    // Upper-case md5 is accepted.
    let jobid = job(
        a,
        &url,
        &md5.to_ascii_uppercase(),
        json!({"filename": "年会 video.mp4"}),
    );
    let t = std::time::Instant::now();
    let first = job_result(a, &jobid);
    assert_eq!(
        first,
        json!({"errcode": 0, "errmsg": "ok", "status": 1, "detail": {}})
    );
    assert_eq!(
        stats(a)["jobs"],
        json!({"processing": 1, "done": 0, "failed": 0})
    );
    let v = wait_job(a, &jobid);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["errmsg"], "ok");
    assert_eq!(v["status"], 2, "{v}");
    let d = &v["detail"];
    assert_eq!(d["errcode"], 0);
    assert_eq!(d["errmsg"], "ok");
    let created = d["created_at"].as_str().expect("created_at is a string");
    assert!(created.parse::<u64>().is_ok_and(|t| t > 1_600_000_000));
    let mid = d["media_id"].as_str().expect("media_id").to_string();
    assert_eq!(
        d.as_object().map(|o| o.len()),
        Some(4),
        "detail has errcode, errmsg, media_id, created_at: {d}"
    );

    // Stored like an upload: same bytes, the given name, kind = type.
    let info = admin_get(a, &format!("media/{mid}"));
    assert_eq!(info["size"], size);
    assert_eq!(info["type"], "video");
    assert_eq!(info["async"], true);
    assert_eq!(info["filename"], "年会 video.mp4");
    assert_eq!(info["sha256"], admin_get(a, "media/src")["sha256"]);
    let r = get(a, &media_get(&mid), &[("Range", "bytes=4194000-4194999")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, generated(77, 4_194_000, 1000));
    let r = get(a, &media_get(&mid), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, size);
    assert_eq!(md5_hex(&r.body), md5);
    assert_eq!(r.header("content-type").as_deref(), Some("video/mp4"));
    assert!(r
        .header("content-disposition")
        .is_some_and(|c| c.contains("filename*=utf-8''%E5%B9%B4%E4%BC%9A%20video.mp4")));

    // The fetch: 4 MiB Range requests, recorded in url_fetches (and, as the
    // URL is the emulator's own, in its video stats too).
    let st = stats(a);
    let fetches: Vec<(u64, u64)> = st["url_fetches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["url"], url.as_str());
            assert_eq!(f["jobid"], jobid.as_str());
            (f["start"].as_u64().unwrap(), f["end"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        fetches,
        vec![
            (0, 4 * MIB - 1),
            (4 * MIB, 8 * MIB - 1),
            (8 * MIB, size - 1)
        ]
    );
    assert_eq!(st["requests"]["video"], 3);
    assert_eq!(st["ranges"][0]["header"], "bytes=0-4194303");
    assert_eq!(st["jobs"], json!({"processing": 0, "done": 1, "failed": 0}));
    assert_eq!(st["requests"]["media/upload_by_url"], 1);
    assert!(st["requests"]["media/get_upload_by_url_result"].as_u64() >= Some(2));
    assert_eq!(st["uploads"], 0);

    // A stats reset clears the new stats too (the job itself stays).
    admin(a, "reset", json!({}));
    let st = stats(a);
    assert_eq!(st["jobs"], json!({"processing": 0, "done": 0, "failed": 0}));
    assert_eq!(st["url_fetches"], json!([]));
    assert_eq!(job_result(a, &jobid)["status"], 2);
}

fn admin_get(a: std::net::SocketAddr, path: &str) -> Value {
    let r = get(a, &format!("/__admin/{path}"), &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[test]
fn md5_mismatch_is_301019_and_file_type_works() {
    let emu = start(Platform::Kf);
    let a = emu.addr();
    let (url, md5) = source(&emu, "doc", 300_000, 5);
    let wrong = job(a, &url, &"0".repeat(32), json!({}));
    let right = job(
        a,
        &url,
        &md5,
        json!({"type": "file", "filename": "report.pdf"}),
    );
    failed(&wait_job(a, &wrong), 301019);
    let v = wait_job(a, &right);
    assert_eq!(v["status"], 2, "{v}");
    let mid = v["detail"]["media_id"].as_str().unwrap();
    let info = admin_get(a, &format!("media/{mid}"));
    assert_eq!(info["type"], "file");
    assert_eq!(info["content_type"], "application/pdf");
    assert_eq!(
        stats(a)["jobs"],
        json!({"processing": 0, "done": 1, "failed": 1})
    );
}

#[test]
fn servers_without_range_are_830001() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    // A raw server that ignores Range: 200 and the whole body.
    let plain = raw_server(|_| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789".to_vec()
    });
    // One that says 206 but gives no Content-Range.
    let no_cr = raw_server(|_| {
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789"
            .to_vec()
    });
    // The emulator's own video URL under an ignore_range fault.
    let (url, md5) = source(&emu, "v", 100_000, 1);
    admin(
        a,
        "faults",
        json!({"kind": "ignore_range", "endpoint": "video", "media_id": "v"}),
    );
    let md5_10 = md5_hex(b"0123456789");
    let j1 = job(
        a,
        &format!("http://{}/x.mp4", plain.addr),
        &md5_10,
        json!({}),
    );
    let j2 = job(
        a,
        &format!("http://{}/x.mp4", no_cr.addr),
        &md5_10,
        json!({}),
    );
    let j3 = job(a, &url, &md5, json!({}));
    for j in [&j1, &j2, &j3] {
        failed(&wait_job(a, j), 830001);
    }
    // One request each, asking the first 4 MiB.
    let reqs = plain.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1);
    assert!(
        reqs[0].starts_with("GET /x.mp4 HTTP/1.1\r\n"),
        "{}",
        reqs[0]
    );
    assert!(
        reqs[0].contains("Range: bytes=0-4194303\r\n"),
        "{}",
        reqs[0]
    );
    assert!(reqs[0].contains(&format!("Host: {}\r\n", plain.addr)));
}

#[test]
fn download_failures_are_830003() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    let (url, md5) = source(&emu, "v", 6 * MIB, 2);
    // A reset after 1000 bytes of the first chunk (only for media "v":
    // the other jobs run at the same time).
    admin(
        a,
        "faults",
        json!({"kind": "reset", "endpoint": "video", "media_id": "v", "after_bytes": 1000}),
    );
    let md5_x = "d41d8cd98f00b204e9800998ecf8427e";
    let jobs = [
        job(
            a,
            &format!("http://127.0.0.1:{}/v.mp4", closed_port()),
            md5_x,
            json!({}),
        ),
        job(a, &video_url(&emu, "no-such-media"), md5_x, json!({})),
        job(a, "https://127.0.0.1:1/v.mp4", md5_x, json!({})),
        job(a, &url, &md5, json!({})),
    ];
    for j in &jobs {
        failed(&wait_job(a, j), 830003);
    }
    // A server whose Content-Range does not answer the request.
    let liar = raw_server(|_| {
        b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 16-25/100\r\nContent-Length: 10\r\n\r\n0123456789"
            .to_vec()
    });
    // One that cuts the body short.
    let short = raw_server(|_| {
        b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-99/100\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789"
            .to_vec()
    });
    // One that answers 500.
    let err = raw_server(|_| {
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_vec()
    });
    // Not HTTP at all.
    let junk = raw_server(|_| b"SSH-2.0-OpenSSH\r\n\r\n".to_vec());
    let jobs: Vec<String> = [liar.addr, short.addr, err.addr, junk.addr]
        .iter()
        .map(|s| job(a, &format!("http://{s}/f"), md5_x, json!({})))
        .collect();
    for j in &jobs {
        failed(&wait_job(a, j), 830003);
    }
    let msg = wait_job(a, &jobs[2])["detail"]["errmsg"].clone();
    assert!(msg.as_str().unwrap().contains("HTTP 500"), "{msg}");
    assert_eq!(
        stats(a)["jobs"],
        json!({"processing": 0, "done": 0, "failed": 8})
    );
}

#[test]
fn sizes_outside_5_bytes_to_the_limit_are_45001() {
    let emu = start_with(Options {
        access_tokens: vec!["TOK".into()],
        limits: [("upload_by_url".to_string(), 65_536)]
            .into_iter()
            .collect(),
        ..Default::default()
    });
    let a = emu.addr();
    let (u0, m0) = source(&emu, "empty", 0, 1);
    let (u5, m5) = source(&emu, "five", 5, 1);
    let (u6, m6) = source(&emu, "six", 6, 1);
    let (ul, ml) = source(&emu, "limit", 65_536, 1);
    let (uo, mo) = source(&emu, "over", 65_537, 1);
    let j0 = job(a, &u0, &m0, json!({}));
    let j5 = job(a, &u5, &m5, json!({}));
    let j6 = job(a, &u6, &m6, json!({}));
    let jl = job(a, &ul, &ml, json!({}));
    let jo = job(a, &uo, &mo, json!({}));
    failed(&wait_job(a, &j0), 45001);
    failed(&wait_job(a, &j5), 45001);
    failed(&wait_job(a, &jo), 45001);
    for j in [&j6, &jl] {
        let v = wait_job(a, j);
        assert_eq!(v["status"], 2, "{v}");
    }
    // Decided on the first answer's Content-Range: one request for "over".
    let st = stats(a);
    let over: Vec<&Value> = st["url_fetches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["jobid"] == jo.as_str())
        .collect();
    assert_eq!(over.len(), 1);
    assert_eq!(
        (over[0]["start"].as_u64(), over[0]["end"].as_u64()),
        (Some(0), Some(4 * MIB - 1))
    );
}

#[test]
fn default_limit_is_200_mib_by_content_range_total() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    // Announces 200 MiB + 1 and never sends the body: the job must not wait for it.
    let huge = raw_server(|_| {
        b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4194303/209715201\r\nContent-Length: 4194304\r\n\r\n"
            .to_vec()
    });
    let j = job(
        a,
        &format!("http://{}/big.mp4", huge.addr),
        &"a".repeat(32),
        json!({}),
    );
    let t = std::time::Instant::now();
    let v = wait_job(a, &j);
    failed(&v, 45001);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(huge.requests.lock().unwrap().len(), 1);
}

#[test]
fn chunked_206_answers_are_read() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    let body: Vec<u8> = (0..100u8).collect();
    let b2 = body.clone();
    let srv = raw_server(move |_| {
        let mut r = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-99/100\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for c in b2.chunks(30) {
            r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            r.extend_from_slice(c);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    });
    let j = job(
        a,
        &format!("http://{}/a.bin?x=1", srv.addr),
        &md5_hex(&body),
        json!({"type": "file", "filename": "a.bin"}),
    );
    let v = wait_job(a, &j);
    assert_eq!(v["status"], 2, "{v}");
    let mid = v["detail"]["media_id"].as_str().unwrap();
    assert_eq!(get(a, &media_get(mid), &[]).body, body);
    assert!(srv.requests.lock().unwrap()[0].starts_with("GET /a.bin?x=1 HTTP/1.1"));
}

#[test]
fn request_validation() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    let url = video_url(&emu, "v");
    let md5 = "0123456789abcdefABCDEF0123456789";
    let cases: Vec<(Value, i64, &str)> = vec![
        (json!({"scene": 2}), 40058, "scene"),
        (json!({"scene": null}), 40058, "scene"),
        (json!({"type": "image"}), 40004, "type"),
        (json!({"type": null}), 40004, "type"),
        (json!({"filename": ""}), 40058, "filename"),
        (json!({"filename": "a".repeat(129)}), 40058, "filename"),
        (json!({"url": ""}), 40058, "url"),
        (json!({"url": "ftp://127.0.0.1/a"}), 40058, "url"),
        (
            json!({"url": format!("http://127.0.0.1/{}", "a".repeat(1010))}),
            40058,
            "url",
        ),
        (json!({"md5": "0123"}), 40058, "md5"),
        (json!({"md5": "g".repeat(32)}), 40058, "md5"),
        (json!({"md5": "0".repeat(33)}), 40058, "md5"),
        (json!({"md5": 5}), 40058, "md5"),
    ];
    for (extra, code, field) in cases {
        let r = start_job(a, &url, md5, extra.clone());
        let v = r.json();
        assert_eq!(v["errcode"], code, "{extra}: {v}");
        assert!(
            v["errmsg"].as_str().unwrap().contains(field),
            "{extra}: {v}"
        );
        assert_eq!(r.header("error-code"), Some(code.to_string()));
    }
    // Limits that are allowed: 128-byte names, 1024-byte URLs, scene "1".
    for extra in [
        json!({"filename": "a".repeat(128)}),
        json!({"url": format!("http://127.0.0.1:1/{}", "a".repeat(1024 - 19))}),
        json!({"scene": "1"}),
    ] {
        assert_eq!(
            start_job(a, &url, md5, extra.clone()).errcode(),
            0,
            "{extra}"
        );
    }
    // Not JSON.
    let r = post(
        a,
        "/cgi-bin/media/upload_by_url?access_token=TOK",
        &[],
        b"scene=1",
    );
    assert_eq!(r.errcode(), 47001);
    // Tokens.
    let body = json!({"scene": 1, "type": "video", "filename": "a.mp4", "url": url, "md5": md5});
    for (q, code) in [("", 41001), ("?access_token=nope", 40001)] {
        for ep in ["upload_by_url", "get_upload_by_url_result"] {
            let r = post(
                a,
                &format!("/cgi-bin/media/{ep}{q}"),
                &[],
                body.to_string().as_bytes(),
            );
            assert_eq!(r.errcode(), code, "{ep}{q}");
        }
    }
    admin(a, "expire_token", json!({"token": "TOK"}));
    assert_eq!(start_job(a, &url, md5, json!({})).errcode(), 42001);
}

#[test]
fn only_wecom_and_kf_have_it() {
    for p in [Platform::Official, Platform::MiniProgram] {
        let emu = start(p);
        let a = emu.addr();
        let r = start_job(a, "http://127.0.0.1:1/a", &"0".repeat(32), json!({}));
        assert_eq!(r.errcode(), 48001, "{p:?}");
        assert!(r.json()["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("api unauthorized"));
        let r = post_json(a, "media/get_upload_by_url_result", &json!({"jobid": "x"}));
        assert_eq!(r.errcode(), 48001, "{p:?}");
        // The token comes first.
        let r = post(a, "/cgi-bin/media/upload_by_url", &[], b"{}");
        assert_eq!(r.errcode(), 41001);
    }
}

#[test]
fn unknown_and_expired_jobids_are_40058() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    for body in [
        json!({"jobid": "nope"}),
        json!({}),
        json!({"jobid": 5}),
        json!({"jobid": "x".repeat(200)}),
    ] {
        let v = post_json(a, "media/get_upload_by_url_result", &body).json();
        assert_eq!(v["errcode"], 40058, "{body}");
        assert!(
            v["errmsg"].as_str().unwrap().starts_with("invalid jobid"),
            "{v}"
        );
    }
    let (url, md5) = source(&emu, "v", 1000, 3);
    let j = job(a, &url, &md5, json!({}));
    assert_eq!(wait_job(a, &j)["status"], 2);
    // Jobs answer for 60 minutes of the emulated clock.
    admin(a, "clock", json!({"advance_secs": 3500}));
    assert_eq!(job_result(a, &j)["status"], 2);
    admin(a, "clock", json!({"advance_secs": 100}));
    let v = job_result(a, &j);
    assert_eq!(v["errcode"], 40058, "{v}");
    assert!(v["errmsg"].as_str().unwrap().starts_with("invalid jobid"));
}

#[test]
fn faults_on_the_new_endpoints() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    admin(
        a,
        "faults",
        json!({"kind": "errcode", "errcode": 45009, "endpoint": "media/upload_by_url"}),
    );
    admin(
        a,
        "faults",
        json!({"kind": "http_status", "status": 503, "endpoint": "media/get_upload_by_url_result"}),
    );
    let r = start_job(a, "http://127.0.0.1:1/a", &"0".repeat(32), json!({}));
    assert_eq!(r.errcode(), 45009);
    let r = post_json(a, "media/get_upload_by_url_result", &json!({"jobid": "x"}));
    assert_eq!(r.status, 503);
    // A reset on the result answer.
    admin(
        a,
        "faults",
        json!({"kind": "reset", "endpoint": "media/get_upload_by_url_result"}),
    );
    let mut c = Conn::open(a);
    c.send(
        "POST",
        "/cgi-bin/media/get_upload_by_url_result?access_token=TOK",
        &[],
        br#"{"jobid":"x"}"#,
    );
    let p = c.read_partial().expect("head");
    assert!(p.error.is_some());
    assert!(p.body.is_empty());
    // Unknown endpoints are still refused by the fault API.
    let r = post(
        a,
        "/__admin/faults",
        &[],
        br#"{"kind":"errcode","endpoint":"media/nope"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(stats(a)["faults_fired"], 3);
}

#[test]
fn binary_takes_job_delay_ms() {
    use std::io::BufRead;
    let exe = env!("CARGO_BIN_EXE_wxmedia-emulator");
    let mut child = std::process::Command::new(exe)
        .args(["--access-token", "TOK", "--job-delay-ms", "0"])
        .args(["--limit", "upload_by_url=1000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn emulator binary");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let a: std::net::SocketAddr = line.trim().parse().expect("address");
    admin(
        a,
        "media",
        json!({"media_id": "s", "size": 1000, "seed": 9}),
    );
    admin(
        a,
        "media",
        json!({"media_id": "b", "size": 1001, "seed": 9}),
    );
    let md5 = md5_hex(&generated(9, 0, 1000));
    let j = job(a, &format!("http://{a}/__video/s"), &md5, json!({}));
    let jb = job(a, &format!("http://{a}/__video/b"), &md5, json!({}));
    assert_eq!(wait_job(a, &j)["status"], 2);
    failed(&wait_job(a, &jb), 45001);
    let _ = child.kill();
    let _ = child.wait();
    let o = std::process::Command::new(exe)
        .args(["--job-delay-ms", "soon"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn store_uploads_puts_fetched_media_in_the_media_dir() {
    let dir = std::env::temp_dir().join(format!("wxm-emu-async-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let emu = start_with(Options {
        media_dir: Some(dir.clone()),
        store_uploads: true,
        access_tokens: vec!["TOK".into()],
        job_delay: Duration::from_millis(0),
        ..Default::default()
    });
    let a = emu.addr();
    let (url, md5) = source(&emu, "src", 70_000, 8);
    let ok = job(a, &url, &md5, json!({"filename": "kept.mp4"}));
    let bad = job(a, &url, &"f".repeat(32), json!({"filename": "dropped.mp4"}));
    assert_eq!(wait_job(a, &ok)["status"], 2);
    failed(&wait_job(a, &bad), 301019);
    assert_eq!(
        std::fs::read(dir.join("kept.mp4")).unwrap(),
        generated(8, 0, 70_000)
    );
    assert!(!dir.join("dropped.mp4").exists());
    drop(emu);
    let _ = std::fs::remove_dir_all(&dir);
}
