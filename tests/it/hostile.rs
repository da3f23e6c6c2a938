//! Hostile servers: a raw TCP server (std::net, threads) on 127.0.0.1 that
//! answers what no WeChat server should. Every case must end with a clear
//! errcode (or, where the answer is still usable, the right bytes), in
//! bounded time and memory, with nothing written outside the target and no
//! token in any message.

use crate::support::*;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wxmedia::error::*;

/// Generous bound for a case that must not hang (io timeout 1 s, 2 attempts).
const BOUND: Duration = Duration::from_secs(30);

fn secrets() -> [&'static str; 1] {
    [HOSTILE_TOKEN]
}

/// Common checks for a failed to_path: a clear code from `allowed`, no
/// target, nothing else in the directory but the resume files, bounded
/// time, clean messages.
fn expect_failure(o: &Got, allowed: &[i32], dir: &std::path::Path, target: &str, case: &str) {
    assert!(
        allowed.contains(&o.rc),
        "{case}: rc {} ({}) not in {allowed:?}",
        o.rc,
        o.errmsg
    );
    assert!(!o.errmsg.is_empty(), "{case}: no message");
    assert!(o.elapsed < BOUND, "{case}: took {:?}", o.elapsed);
    assert_clean(&o.errmsg, &secrets(), case);
    assert_clean(&o.last_errmsg, &secrets(), case);
    assert!(!dir.join(target).exists(), "{case}: target created");
    for e in dir_entries(dir) {
        assert!(
            e == format!("{target}.wxmpart") || e == format!("{target}.wxmpart.json"),
            "{case}: unexpected file {e:?} beside the target"
        );
    }
}

/// Peak memory is a figure of the whole process, where the other tests of
/// this binary run beside this one: the case runs alone in a child process.
#[test]
fn huge_content_length_and_huge_total_stay_bounded() {
    if !in_own_process(
        module_path!(),
        "huge_content_length_and_huge_total_stay_bounded",
    ) {
        return;
    }
    // A 200 that announces 10^15 bytes and sends 1000.
    let srv = RawServer::start(|_req, s| {
        respond(
            s,
            "200 OK",
            &[
                ("Content-Length", "1000000000000000".into()),
                (
                    "Content-Disposition",
                    "attachment; filename=\"x.bin\"".into(),
                ),
                ("Content-Type", "application/octet-stream".into()),
            ],
            &pattern(1000),
        );
    });
    let c = new_client(&ClientOpts::at(&srv.base_url()));
    let dir = tempdir("huge-cl");
    let o = download_path(&c, "m", &dir.join("t"));
    expect_failure(
        &o,
        &[WXM_E_NETWORK, WXM_E_PROTOCOL],
        &dir,
        "t",
        "huge Content-Length",
    );

    // A 206 whose total is 2^62: parallel workers must not plan 2^46 chunks.
    // The server answers three ranges, then closes every connection at once.
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let served2 = served.clone();
    let srv = RawServer::start(move |req, s| {
        if served2.fetch_add(1, Ordering::SeqCst) >= 3 {
            return;
        }
        let (a, b) = req.range.unwrap_or((0, 65535));
        let len = b - a + 1;
        respond(
            s,
            "206 Partial Content",
            &[
                (
                    "Content-Range",
                    format!("bytes {a}-{b}/4611686018427387904"),
                ),
                ("Content-Length", len.to_string()),
                (
                    "Content-Disposition",
                    "attachment; filename=\"x.bin\"".into(),
                ),
            ],
            &vec![0u8; len as usize],
        );
    });
    let before = peak_rss();
    for parallelism in [1u32, 4, 64] {
        served.store(0, Ordering::SeqCst);
        let c = new_client(&ClientOpts {
            parallelism,
            ..ClientOpts::at(&srv.base_url())
        });
        let o = download_sink_capped(&c, "m", 0, 64 << 20);
        assert!(
            [WXM_E_NETWORK, WXM_E_PROTOCOL].contains(&o.rc),
            "parallelism {parallelism}: {} {}",
            o.rc,
            o.errmsg
        );
        assert!(o.elapsed < BOUND, "{:?}", o.elapsed);
        assert_clean(&o.errmsg, &secrets(), "huge total");
        let o = download_path(&c, "m", &dir.join("h"));
        assert!(o.rc != 0 && !dir.join("h").exists(), "{}", o.rc);
    }
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 512 << 20, "peak memory grew by {grown} bytes");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn endless_headers_fast_and_slow() {
    // Fast: header lines without end (the client caps the head at 64 KiB).
    let srv = RawServer::start(|_req, s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        let line = format!("X-Pad: {}\r\n", "a".repeat(1000));
        for _ in 0..100_000 {
            if s.write_all(line.as_bytes()).is_err() {
                return;
            }
        }
    });
    let c = new_client(&ClientOpts::at(&srv.base_url()));
    let dir = tempdir("headers");
    let o = download_path(&c, "m", &dir.join("t"));
    expect_failure(
        &o,
        &[WXM_E_NETWORK, WXM_E_PROTOCOL],
        &dir,
        "t",
        "endless headers",
    );

    // Slow: one header line every 200 ms, each well inside the 1 s I/O
    // timeout, for up to a minute: the head as a whole must time out.
    let srv = RawServer::start(|_req, s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if s.write_all(b"X-Slow: 1\r\n").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let c = new_client(&ClientOpts::at(&srv.base_url()));
    let o = download_path(&c, "m", &dir.join("t"));
    expect_failure(
        &o,
        &[WXM_E_TIMEOUT, WXM_E_NETWORK, WXM_E_PROTOCOL],
        &dir,
        "t",
        "trickled headers",
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_body_longer_than_its_content_range_is_cut_or_refused() {
    let data = pattern(5000);
    let d2 = data.clone();
    // Close-delimited (no Content-Length): 300 bytes more than the range says.
    let srv = RawServer::start(move |req, s| {
        let (a, b) = req.range.unwrap_or((0, 4999));
        let b = b.min(4999);
        let mut body = d2[a as usize..=b as usize].to_vec();
        body.extend_from_slice(&[0xEE; 300]);
        respond(
            s,
            "206 Partial Content",
            &[
                ("Content-Range", format!("bytes {a}-{b}/5000")),
                ("Content-Disposition", "attachment; filename=\"x\"".into()),
            ],
            &body,
        );
    });
    for parallelism in [1, 3] {
        let c = new_client(&ClientOpts {
            chunk: 1024,
            parallelism,
            ..ClientOpts::at(&srv.base_url())
        });
        let o = download_sink_capped(&c, "m", 0, 1 << 20);
        assert_eq!(o.rc, 0, "{}", o.errmsg);
        assert!(o.data == data, "extra bytes reached the sink");
        let dir = tempdir("longer");
        let o = download_path(&c, "m", &dir.join("t"));
        assert_eq!(o.rc, 0, "{}", o.errmsg);
        assert!(o.data == data);
        assert_eq!(dir_entries(&dir), vec!["t".to_string()]);
        let _ = std::fs::remove_dir_all(dir);
    }
    // With a Content-Length that disagrees with the Content-Range: refused.
    let d3 = data.clone();
    let srv = RawServer::start(move |req, s| {
        let (a, b) = req.range.unwrap_or((0, 4999));
        let b = b.min(4999);
        let mut body = d3[a as usize..=b as usize].to_vec();
        body.extend_from_slice(&[0xEE; 300]);
        respond(
            s,
            "206 Partial Content",
            &[
                ("Content-Range", format!("bytes {a}-{b}/5000")),
                ("Content-Length", body.len().to_string()),
            ],
            &body,
        );
    });
    let c = new_client(&ClientOpts::at(&srv.base_url()));
    let dir = tempdir("longer-cl");
    let o = download_path(&c, "m", &dir.join("t"));
    expect_failure(&o, &[WXM_E_PROTOCOL], &dir, "t", "Content-Length mismatch");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn malformed_content_ranges_are_protocol_errors() {
    let cases: &[&str] = &[
        "bytes 0-99/50",
        "bytes 99-0/100",
        "bytes 0-99",
        "bytes=0-99/100",
        "bytes 0-99/-1",
        "bytes 0-99/100/100",
        "",
        "bytes 0x0-0x63/100",
        "bytes 16-115/116",
        "bytes 0-99/*",
        "items 0-99/100",
        "bytes 0-18446744073709551615/18446744073709551615",
        "bytes 0-99999999999999999999999/100",
        "bytes 0--1/100",
        "bytes \u{0}0-99/100",
    ];
    for cr in cases {
        let cr_owned = cr.to_string();
        let srv = RawServer::start(move |_req, s| {
            respond(
                s,
                "206 Partial Content",
                &[
                    ("Content-Range", cr_owned.clone()),
                    ("Content-Length", "100".into()),
                    ("Content-Disposition", "attachment; filename=\"x\"".into()),
                ],
                &pattern(100),
            );
        });
        let c = new_client(&ClientOpts {
            chunk: 100 * 16,
            ..ClientOpts::at(&srv.base_url())
        });
        let dir = tempdir("cr");
        let o = download_path(&c, "m", &dir.join("t"));
        // A NUL in a header is refused by the HTTP parser itself (network error).
        expect_failure(
            &o,
            &[WXM_E_PROTOCOL, WXM_E_NETWORK],
            &dir,
            "t",
            &format!("Content-Range {cr:?}"),
        );
        let o = download_sink_capped(&c, "m", 0, 1 << 20);
        assert!(
            [WXM_E_PROTOCOL, WXM_E_NETWORK].contains(&o.rc),
            "{cr:?}: {}",
            o.rc
        );
        assert!(o.data.is_empty(), "{cr:?}: bytes reached the sink");
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn safe_name(n: &str) -> bool {
    !n.is_empty()
        && n != "."
        && n != ".."
        && !n.contains('/')
        && !n.contains('\\')
        && !n.chars().any(|c| c.is_control())
        && n.trim() == n
}

#[test]
fn content_disposition_filenames_are_safe_last_components() {
    let long = format!("attachment; filename=\"{}.bin\"", "L".repeat(30_000));
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (
            b"attachment; filename=\"../../etc/passwd\"".to_vec(),
            Some("passwd"),
        ),
        (b"attachment; filename=/etc/passwd".to_vec(), Some("passwd")),
        (
            b"attachment; filename=\"..\\\\..\\\\win.ini\"".to_vec(),
            Some("win.ini"),
        ),
        (
            b"attachment; filename*=utf-8''%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_vec(),
            Some("passwd"),
        ),
        (
            b"attachment; filename*=utf-8''a%00b%0d%0a.txt".to_vec(),
            Some("ab.txt"),
        ),
        (b"attachment; filename*=utf-8''..".to_vec(), None),
        (b"attachment; filename=\"..\"".to_vec(), None),
        (b"attachment; filename=\".\"".to_vec(), None),
        (b"attachment; filename=\"/\"".to_vec(), None),
        (b"attachment; filename=\"dir/\"".to_vec(), None),
        (b"attachment; filename=\"unterminated".to_vec(), None),
        (b"attachment; filename=".to_vec(), None),
        (
            b"attachment; filename*=utf-8''%E8%81%8A.txt; filename=\"../x\"".to_vec(),
            Some("聊.txt"),
        ),
        (
            b"attachment; filename*=bogus; filename=\"ok.txt\"".to_vec(),
            Some("ok.txt"),
        ),
        (
            b"attachment; filename*=utf-8''%ff%fe; filename=\"ok2\"".to_vec(),
            Some("ok2"),
        ),
        (
            b"attachment; filename=\"caf\xe9/../../x\xff\"".to_vec(),
            None,
        ),
        (b";;;;===;\"\"\"".to_vec(), None),
        (
            b"attachment; FILENAME=\"  spaced  \"".to_vec(),
            Some("spaced"),
        ),
        (b"attachment; filename=\"\t\"".to_vec(), None),
        (long.clone().into_bytes(), None),
    ];
    let data = pattern(3000);
    for (i, (cd, want)) in cases.into_iter().enumerate() {
        let (d2, cd2) = (data.clone(), cd.clone());
        let srv = RawServer::start(move |req, s| serve_range(s, req, &d2, &cd2));
        let c = new_client(&ClientOpts {
            chunk: 1024,
            ..ClientOpts::at(&srv.base_url())
        });
        let show = String::from_utf8_lossy(&cd)
            .chars()
            .take(80)
            .collect::<String>();
        let o = download_sink_capped(&c, "m", 0, 1 << 20);
        assert_eq!(o.rc, 0, "case {i} {show:?}: {}", o.errmsg);
        assert!(o.data == data, "case {i}");
        match (&o.filename, want) {
            (Some(n), _) => {
                assert!(safe_name(n), "case {i} {show:?}: unsafe filename {n:?}");
                if let Some(w) = want {
                    assert_eq!(n, w, "case {i} {show:?}");
                } else if cd == long.as_bytes() {
                    assert!(n.ends_with(".bin"), "case {i}");
                } else {
                    // Latin-1 fallback and similar: safe, whatever it is.
                }
            }
            (None, Some(w)) => panic!("case {i} {show:?}: no filename, wanted {w:?}"),
            (None, None) => {}
        }
        // to_path writes only the target, whatever the server calls the file.
        let root = tempdir("cd");
        let dir = root.join("inner");
        std::fs::create_dir_all(&dir).expect("dir");
        let o = download_path(&c, "m", &dir.join("t"));
        assert_eq!(o.rc, 0, "case {i}: {}", o.errmsg);
        assert!(o.data == data);
        assert_eq!(dir_entries(&dir), vec!["t".to_string()], "case {i}");
        assert_eq!(dir_entries(&root), vec!["inner".to_string()], "case {i}");
        let _ = std::fs::remove_dir_all(root);
    }
}

#[test]
fn video_url_redirect_loops_and_foreign_schemes_are_refused() {
    let port = std::sync::Arc::new(std::sync::Mutex::new(0u16));
    let p2 = port.clone();
    let srv = RawServer::start(move |req, s| {
        let port = *p2.lock().unwrap_or_else(|p| p.into_inner());
        let json = |s: &mut TcpStream, url: String| {
            respond(
                s,
                "200 OK",
                &[("Content-Type", "text/plain".into())],
                format!("{{\"video_url\":\"{url}\"}}").as_bytes(),
            )
        };
        let media = req.media_id().to_string();
        match req.path() {
            "/cgi-bin/media/get" => match media.as_str() {
                "loop" => json(s, format!("http://127.0.0.1:{port}/loop")),
                "pingpong" => json(s, format!("http://127.0.0.1:{port}/ping")),
                "file" => json(s, "file:///etc/passwd".into()),
                "ftp" => json(s, format!("ftp://127.0.0.1:{port}/x")),
                "js" => json(s, "javascript:alert(1)".into()),
                "relative" => json(s, "//127.0.0.1/x".into()),
                "gopher" => json(s, format!("gopher://127.0.0.1:{port}/x")),
                "tofile" => json(s, format!("http://127.0.0.1:{port}/tofile")),
                "again" => json(s, format!("http://127.0.0.1:{port}/again")),
                "nolocation" => json(s, format!("http://127.0.0.1:{port}/nolocation")),
                _ => respond(
                    s,
                    "200 OK",
                    &[],
                    b"{\"errcode\":40007,\"errmsg\":\"invalid media_id\"}",
                ),
            },
            "/loop" => respond(s, "302 Found", &[("Location", "/loop".into())], b""),
            "/ping" => respond(
                s,
                "302 Found",
                &[("Location", format!("http://127.0.0.1:{port}/pong"))],
                b"",
            ),
            "/pong" => respond(
                s,
                "307 Temporary Redirect",
                &[("Location", "/ping".into())],
                b"",
            ),
            "/tofile" => respond(
                s,
                "302 Found",
                &[("Location", "file:///etc/passwd".into())],
                b"",
            ),
            "/again" => json(s, format!("http://127.0.0.1:{port}/again")),
            "/nolocation" => respond(s, "302 Found", &[], b""),
            _ => respond(s, "404 Not Found", &[], b"no"),
        }
    });
    *port.lock().unwrap_or_else(|p| p.into_inner()) = srv.addr.port();
    let c = new_client(&ClientOpts::at(&srv.base_url()));
    for media in [
        "loop",
        "pingpong",
        "file",
        "ftp",
        "js",
        "relative",
        "gopher",
        "tofile",
        "again",
        "nolocation",
    ] {
        let dir = tempdir("video");
        let n0 = srv.requests.load(Ordering::SeqCst);
        let o = download_path(&c, media, &dir.join("v.mp4"));
        expect_failure(&o, &[WXM_E_PROTOCOL], &dir, "v.mp4", media);
        let n = srv.requests.load(Ordering::SeqCst) - n0;
        assert!(n <= 40, "{media}: {n} requests");
        let _ = std::fs::remove_dir_all(dir);
    }
    // Nothing but the API and the loopback paths above was ever asked for.
    for r in srv.seen.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        if r.path() != "/cgi-bin/media/get" {
            assert!(
                !r.target.contains(HOSTILE_TOKEN),
                "token sent to a video URL: {}",
                r.target
            );
        }
    }
}

#[test]
fn a_json_answer_that_never_ends_is_refused() {
    // Fast: an endless JSON body, no Content-Length, no Content-Disposition.
    let srv = RawServer::start(|_req, s| {
        respond(
            s,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            b"{\"errcode\":0,\"pad\":\"",
        );
        let block = vec![b'a'; 64 * 1024];
        for _ in 0..(256 * 16) {
            // At most 256 MiB, so a failing client still ends.
            if s.write_all(&block).is_err() {
                return;
            }
        }
    });
    let c = new_client(&ClientOpts::at(&srv.base_url()));
    let dir = tempdir("json-fast");
    let o = download_path(&c, "m", &dir.join("t"));
    expect_failure(&o, &[WXM_E_PROTOCOL], &dir, "t", "endless JSON");
    let o = download_sink_capped(&c, "m", 0, 64 << 20);
    assert_eq!(o.rc, WXM_E_PROTOCOL, "{}", o.errmsg);
    assert!(o.data.is_empty(), "JSON reached the sink as media");
    let _ = std::fs::remove_dir_all(&dir);

    // Slow: a byte every 50 ms (inside the 1 s I/O timeout) for a minute.
    let srv = RawServer::start(|_req, s| {
        respond(
            s,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            b"{\"errcode\":",
        );
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if s.write_all(b" ").and_then(|_| s.flush()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let c = new_client(&ClientOpts::at(&srv.base_url()));
    let dir = tempdir("json-slow");
    let o = download_path(&c, "m", &dir.join("t"));
    expect_failure(
        &o,
        &[WXM_E_TIMEOUT, WXM_E_PROTOCOL, WXM_E_NETWORK],
        &dir,
        "t",
        "trickled JSON",
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_answer_that_is_not_the_media_never_reaches_a_sink_or_a_part_file() {
    // No Content-Disposition, typed JSON or text (or untyped but starting as
    // JSON), whatever its framing says: huge length, chunked, endless.
    let errcode = br#"{"errcode":40007,"errmsg":"invalid media_id"}"#;
    type Case = (
        &'static str,
        &'static str,
        Vec<(&'static str, String)>,
        Vec<u8>,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "json, 10^15 length",
            "200 OK",
            vec![
                ("Content-Type", "application/json".into()),
                ("Content-Length", "1000000000000000".into()),
            ],
            errcode.to_vec(),
            true,
        ),
        (
            "text, chunked",
            "200 OK",
            vec![
                ("Content-Type", "text/plain".into()),
                ("Transfer-Encoding", "chunked".into()),
            ],
            format!(
                "{:x}\r\n{}\r\n0\r\n\r\n",
                errcode.len(),
                String::from_utf8_lossy(errcode)
            )
            .into_bytes(),
            true,
        ),
        (
            "json 206, no length",
            "206 Partial Content",
            vec![
                ("Content-Type", "application/json; charset=utf-8".into()),
                ("Content-Range", "bytes 0-65535/1000000".into()),
            ],
            errcode.to_vec(),
            true,
        ),
        (
            "untyped, starts as JSON",
            "200 OK",
            vec![("Content-Length", (errcode.len() + 2).to_string())],
            [&b"\r\n"[..], errcode].concat(),
            true,
        ),
        (
            "text that is not JSON, huge length",
            "200 OK",
            vec![
                ("Content-Type", "text/html".into()),
                ("Content-Length", "1000000000000000".into()),
            ],
            b"<html>gateway error</html>".to_vec(),
            false,
        ),
        (
            "json without errcode, endless",
            "200 OK",
            vec![("Content-Type", "application/json".into())],
            [&b"{\"pad\":\""[..], &vec![b'a'; 4 << 20]].concat(),
            false,
        ),
    ];
    for (case, status, headers, body, has_errcode) in cases {
        let (h, b) = (headers.clone(), body.clone());
        let srv = RawServer::start(move |_req, s| respond(s, status, &h, &b));
        let c = new_client(&ClientOpts::at(&srv.base_url()));
        let dir = tempdir("not-media");
        let want: &[i32] = if has_errcode {
            &[40007]
        } else {
            &[WXM_E_PROTOCOL]
        };
        let o = download_path(&c, "m", &dir.join("t"));
        expect_failure(&o, want, &dir, "t", case);
        // Nothing of it in a part file either.
        let part = dir.join("t.wxmpart");
        let kept = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        assert_eq!(kept, 0, "{case}: {kept} bytes of a non-media answer kept");
        for parallelism in [1u32, 4] {
            let c = new_client(&ClientOpts {
                parallelism,
                ..ClientOpts::at(&srv.base_url())
            });
            let o = download_sink_capped(&c, "m", 0, 64 << 20);
            assert!(
                want.contains(&o.rc),
                "{case} p{parallelism}: {} {}",
                o.rc,
                o.errmsg
            );
            assert!(
                o.data.is_empty(),
                "{case}: a non-media answer reached the sink"
            );
            assert!(o.elapsed < BOUND, "{case}: {:?}", o.elapsed);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn an_unrequested_content_encoding_is_refused() {
    // The client never sends Accept-Encoding; a server that compresses
    // anyway must not have its gzip bytes saved as the media.
    let gz: Vec<u8> = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03]
        .iter()
        .copied()
        .chain(pattern(500))
        .collect();
    for (status, encoding) in [
        ("206 Partial Content", "gzip"),
        ("200 OK", "gzip"),
        ("200 OK", "br"),
        ("206 Partial Content", "x-gzip, identity"),
    ] {
        let gz2 = gz.clone();
        let srv = RawServer::start(move |req, s| {
            assert!(
                req.header("accept-encoding")
                    .is_none_or(|v| v == "identity"),
                "client asked for {:?}",
                req.header("accept-encoding")
            );
            let n = gz2.len();
            let mut headers = vec![
                ("Content-Encoding", encoding.to_string()),
                ("Content-Length", n.to_string()),
                (
                    "Content-Disposition",
                    "attachment; filename=\"x.bin\"".into(),
                ),
            ];
            if status.starts_with("206") {
                headers.push(("Content-Range", format!("bytes 0-{}/{n}", n - 1)));
            }
            respond(s, status, &headers, &gz2);
        });
        let c = new_client(&ClientOpts::at(&srv.base_url()));
        let dir = tempdir("gzip");
        let o = download_path(&c, "m", &dir.join("t"));
        expect_failure(
            &o,
            &[WXM_E_PROTOCOL],
            &dir,
            "t",
            &format!("{status} {encoding}"),
        );
        let o = download_sink_capped(&c, "m", 0, 1 << 20);
        assert_eq!(o.rc, WXM_E_PROTOCOL);
        assert!(o.data.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_truncated_whole_body_is_not_success() {
    // First a proper 206 that tells the size (100 000), then the server
    // "ignores Range": a close-delimited 200 cut short. The size known
    // from the 206 must win; a short file is never renamed into place.
    let data = pattern(100_000);
    let d2 = data.clone();
    let srv = RawServer::start(move |req, s| match req.range {
        Some((0, b)) => {
            let b = b.min(99_999);
            respond(
                s,
                "206 Partial Content",
                &[
                    ("Content-Range", format!("bytes 0-{b}/100000")),
                    ("Content-Length", (b + 1).to_string()),
                    ("Content-Disposition", "attachment; filename=\"x\"".into()),
                ],
                &d2[..=b as usize],
            );
        }
        _ => respond(
            s,
            "200 OK",
            &[("Content-Disposition", "attachment; filename=\"x\"".into())],
            &d2[..50_000],
        ),
    });
    for parallelism in [1, 4] {
        let c = new_client(&ClientOpts {
            chunk: 16 * 1024,
            parallelism,
            ..ClientOpts::at(&srv.base_url())
        });
        let dir = tempdir("trunc200");
        let o = download_path(&c, "m", &dir.join("t"));
        expect_failure(
            &o,
            &[WXM_E_NETWORK, WXM_E_PROTOCOL],
            &dir,
            "t",
            "truncated 200",
        );
        let o = download_sink_capped(&c, "m", 0, 1 << 20);
        assert_ne!(
            o.rc, 0,
            "parallelism {parallelism}: a short body was reported complete"
        );
        assert!(data.starts_with(&o.data), "wrong bytes reached the sink");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Bodies read straight from the socket (past ureq) go over connections
/// that the downloader, not ureq, keeps for reuse: one that the server
/// closes after its answer (`Connection: close`, or HTTP/1.0 without
/// keep-alive, then a shutdown) must never be handed out again. With one
/// attempt, a request sent on such a connection fails the download.
#[test]
fn connections_the_server_closes_are_never_reused() {
    let data = pattern(400_000);
    for http10 in [false, true] {
        let d2 = data.clone();
        let srv = RawServer::start(move |req, s| {
            let (a, b) = req.range.unwrap_or((0, 399_999));
            let b = b.min(399_999);
            let headers = [
                ("Content-Range", format!("bytes {a}-{b}/400000")),
                ("Content-Length", (b - a + 1).to_string()),
                ("Content-Disposition", "attachment; filename=\"x\"".into()),
            ];
            let body = &d2[a as usize..=b as usize];
            if http10 {
                // HTTP/1.0 closes by default: no Connection header at all.
                let mut head = "HTTP/1.0 206 Partial Content\r\n".to_string();
                for (k, v) in &headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(body);
            } else {
                respond(s, "206 Partial Content", &headers, body);
            }
        });
        for parallelism in [1, 3] {
            let c = new_client(&ClientOpts {
                chunk: 128 * 1024,
                parallelism,
                attempts: 1,
                ..ClientOpts::at(&srv.base_url())
            });
            let case = format!("HTTP/1.0 {http10}, parallelism {parallelism}");
            for round in 0..2 {
                let before = srv.requests.load(Ordering::SeqCst);
                let o = download_sink_capped(&c, "m", 0, 1 << 20);
                assert_eq!(o.rc, 0, "{case}, round {round}: {}", o.errmsg);
                assert!(o.data == data, "{case}: wrong bytes");
                // 400 000 bytes in 128 KiB chunks: 4 requests, none repeated.
                assert_eq!(srv.requests.load(Ordering::SeqCst) - before, 4, "{case}");
                let dir = tempdir("closed");
                let o = download_path(&c, "m", &dir.join("t"));
                assert_eq!(o.rc, 0, "{case}: {}", o.errmsg);
                assert!(o.data == data, "{case}");
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

#[test]
fn a_close_delimited_whole_body_is_read_to_its_end() {
    // A server that ignores Range and sends no Content-Length: the body
    // ends when the connection closes, and only then is the size known.
    // Parallel or not, the whole file arrives, or the download fails.
    let data = pattern(100_000);
    let d2 = data.clone();
    let srv = RawServer::start(move |_req, s| {
        respond(
            s,
            "200 OK",
            &[("Content-Disposition", "attachment; filename=\"x\"".into())],
            &d2,
        )
    });
    for parallelism in [1, 4] {
        let c = new_client(&ClientOpts {
            chunk: 16 * 1024,
            parallelism,
            ..ClientOpts::at(&srv.base_url())
        });
        let o = download_sink_capped(&c, "m", 0, 1 << 20);
        assert_eq!(o.rc, 0, "parallelism {parallelism}: {}", o.errmsg);
        assert_eq!(o.data.len(), data.len(), "parallelism {parallelism}");
        assert!(o.data == data && o.in_order);
        assert_eq!(o.size, data.len() as u64);
        let dir = tempdir("close-delimited");
        let o = download_path(&c, "m", &dir.join("t"));
        assert_eq!(o.rc, 0, "{}", o.errmsg);
        assert!(
            o.data == data,
            "parallelism {parallelism}: {} bytes",
            o.data.len()
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn an_echoed_token_never_reaches_a_message() {
    // Servers that quote the request: an errcode whose errmsg holds the
    // token, an HTTP error page that echoes the request line, a 302 whose
    // Location carries it.
    let srv = RawServer::start(|req, s| {
        let media = req.media_id().to_string();
        match media.as_str() {
            "errmsg" => respond(
                s,
                "200 OK",
                &[("Content-Type", "application/json".into())],
                format!("{{\"errcode\":40001,\"errmsg\":\"invalid credential, access_token is {HOSTILE_TOKEN}, hint: [x]\"}}").as_bytes(),
            ),
            "errheader" => respond(
                s,
                "200 OK",
                &[
                    ("Error-Code", "40014".into()),
                    ("Error-Msg", format!("token {HOSTILE_TOKEN} invalid")),
                    ("Content-Type", "application/json".into()),
                ],
                b"{}",
            ),
            "page" => respond(
                s,
                "500 Internal Server Error",
                &[("Content-Type", "text/html".into())],
                format!("<h1>error</h1><pre>{} {}</pre>", req.method, req.target).as_bytes(),
            ),
            "page404" => respond(
                s,
                "404 Not Found",
                &[],
                format!("no such thing: {} (token {HOSTILE_TOKEN})", req.target).as_bytes(),
            ),
            _ => respond(
                s,
                "200 OK",
                &[("Content-Type", "text/plain".into())],
                format!("{{\"errcode\":45033,\"errmsg\":\"busy; your access_token={HOSTILE_TOKEN}\"}}").as_bytes(),
            ),
        }
    });
    let c = new_client(&ClientOpts::at(&srv.base_url()));
    for media in ["errmsg", "errheader", "page", "page404", "busy"] {
        let o = download_sink_capped(&c, media, 0, 1 << 20);
        assert_ne!(o.rc, 0, "{media}");
        assert!(!o.errmsg.is_empty());
        assert_clean(&o.errmsg, &secrets(), &format!("{media} errmsg"));
        assert_clean(&o.last_errmsg, &secrets(), &format!("{media} last_errmsg"));
    }
}

#[test]
fn hostile_upload_answers_are_refused() {
    let srv = RawServer::start(|req, s| {
        let kind = req.target.split("type=").nth(1).unwrap_or("").to_string();
        // `type` is the upload's type; the test uses it to pick the answer.
        match kind.as_str() {
            "file" => {
                // An endless JSON answer.
                respond(
                    s,
                    "200 OK",
                    &[("Content-Type", "application/json".into())],
                    b"{\"media_id\":\"",
                );
                let block = vec![b'a'; 64 * 1024];
                for _ in 0..4096 {
                    if s.write_all(&block).is_err() {
                        return;
                    }
                }
            }
            "image" => respond(s, "200 OK", &[], b"{\"errcode\":0,\"type\":\"image\"}"),
            "voice" => respond(s, "200 OK", &[], b"[1,2,3]"),
            "video" => respond(
                s,
                "200 OK",
                &[],
                format!("{{\"errcode\":40001,\"errmsg\":\"bad {HOSTILE_TOKEN}\"}}").as_bytes(),
            ),
            _ => respond(s, "502 Bad Gateway", &[], req.target.as_bytes()),
        }
    });
    let c = new_client(&ClientOpts::at(&srv.base_url()));
    let dir = tempdir("up");
    let path = dir.join("a.bin");
    let mut content = vec![0xFF, 0xD8, 0xFF, 0xE0];
    content.extend(pattern(10_000));
    std::fs::write(&path, &content).expect("write");
    let mp4 = dir.join("v.mp4");
    let mut v = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    v.extend(pattern(5000));
    std::fs::write(&mp4, &v).expect("write");
    let amr = dir.join("a.amr");
    let mut a = b"#!AMR\n".to_vec();
    a.extend(pattern(5000));
    std::fs::write(&amr, &a).expect("write");
    for (kind, file, allowed) in [
        ("file", &path, &[WXM_E_PROTOCOL][..]),
        ("image", &path, &[WXM_E_PROTOCOL][..]),
        ("voice", &amr, &[WXM_E_PROTOCOL][..]),
        ("video", &mp4, &[40001][..]),
    ] {
        let t0 = Instant::now();
        // SAFETY: live handles for the duration of each call.
        let (rc, msg, last) = unsafe {
            use wxmedia::ffi::upload::*;
            let u = wxm_upload_new(c.0, cs(kind).as_ptr());
            assert_eq!(
                wxm_upload_set_path(u, cs(file.to_str().expect("utf-8")).as_ptr()),
                0
            );
            let rc = wxm_upload_run(u);
            let last = last_errmsg();
            let msg = text(wxm_upload_errmsg(u)).unwrap_or_default();
            assert!(rc != 0 || text(wxm_upload_media_id(u)).is_some());
            wxm_upload_free(u);
            (rc, msg, last)
        };
        assert!(allowed.contains(&rc), "{kind}: {rc} {msg}");
        assert!(t0.elapsed() < BOUND, "{kind}: {:?}", t0.elapsed());
        assert_clean(&msg, &secrets(), kind);
        assert_clean(&last, &secrets(), kind);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn closed_and_garbage_answers_are_network_or_protocol_errors() {
    let srv = RawServer::start(|req, s| {
        let media = req.media_id().to_string();
        match media.as_str() {
            "close" => {}
            "garbage" => {
                let _ = s.write_all(b"garbage\r\n\r\n\x00\x01\x02");
            }
            "http09" => {
                let _ = s.write_all(&pattern(5000));
            }
            "badstatus" => {
                let _ = s.write_all(b"HTTP/1.1 999999 What\r\nContent-Length: 0\r\n\r\n");
            }
            "half" => {
                let _ = s.write_all(b"HTTP/1.1 206 Partial Content\r\nContent-Ran");
            }
            "no206range" => respond(
                s,
                "206 Partial Content",
                &[("Content-Length", "16".into())],
                &[0; 16],
            ),
            "status100" => {
                let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n");
            }
            _ => respond(s, "200 OK", &[], b""),
        }
    });
    let c = new_client(&ClientOpts::at(&srv.base_url()));
    for media in [
        "close",
        "garbage",
        "http09",
        "badstatus",
        "half",
        "no206range",
        "status100",
    ] {
        let dir = tempdir("garbage");
        let o = download_path(&c, media, &dir.join("t"));
        expect_failure(
            &o,
            &[
                WXM_E_NETWORK,
                WXM_E_PROTOCOL,
                WXM_E_HTTP_STATUS,
                WXM_E_TIMEOUT,
            ],
            &dir,
            "t",
            media,
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "wxmedia-hostile-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn a_token_endpoint_echoing_the_secret_never_reaches_a_message() {
    const SECRET_VALUE: &str = "hostile-secret-9ZqT4";
    let srv = RawServer::start(|req, s| {
        if req.path() == "/cgi-bin/gettoken" {
            let body = if req.target.contains("corpid=echo") {
                format!(
                    "{{\"errcode\":40001,\"errmsg\":\"invalid credential, corpsecret is {SECRET_VALUE} (corpid echo)\"}}"
                )
            } else {
                format!(
                    "{{\"errcode\":0,\"access_token\":\"tok {SECRET_VALUE}\",\"expires_in\":7200}}"
                )
            };
            respond(
                s,
                "200 OK",
                &[("Content-Type", "application/json".into())],
                body.as_bytes(),
            );
        } else {
            respond(s, "500 Internal Server Error", &[], req.target.as_bytes());
        }
    });
    for corpid in ["echo", "badtoken"] {
        let mut o = ClientOpts::at(&srv.base_url());
        o.token = None;
        o.credentials = Some((corpid.to_string(), SECRET_VALUE.to_string()));
        let c = new_client(&o);
        let out = download_sink_capped(&c, "m", 0, 1 << 20);
        assert!(
            [40001, WXM_E_PROTOCOL].contains(&out.rc),
            "{corpid}: {} {}",
            out.rc,
            out.errmsg
        );
        assert_clean(&out.errmsg, &[SECRET_VALUE], &format!("{corpid} errmsg"));
        assert_clean(
            &out.last_errmsg,
            &[SECRET_VALUE],
            &format!("{corpid} last_errmsg"),
        );
    }
}

// ---- Expect: 100-continue (uploads of 1 MiB and more) -----------------------

/// Runs one upload of `path` as type `file`: (rc, media_id, errmsg).
fn upload_file(c: &TestClient, path: &std::path::Path) -> (i32, Option<String>, String) {
    use wxmedia::ffi::upload::*;
    // SAFETY: live handles for the duration of each call.
    unsafe {
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        assert_eq!(
            wxm_upload_set_path(u, cs(path.to_str().expect("utf-8")).as_ptr()),
            0
        );
        let rc = wxm_upload_run(u);
        let out = (
            rc,
            text(wxm_upload_media_id(u)),
            text(wxm_upload_errmsg(u)).unwrap_or_default(),
        );
        wxm_upload_free(u);
        out
    }
}

/// What a hand-written server saw of one request.
#[derive(Debug, Default, Clone)]
struct SeenUpload {
    expect: bool,
    body_bytes: u64,
}

/// A server that answers each connection's request with `answer(index,
/// head)` once it has the head: `Some(reply)` at once, before any body
/// (then it counts what body still arrives), or `None` to read the whole
/// body first and reply with a success.
fn early_answer_server(
    answer: impl Fn(usize, &str) -> Option<String> + Send + 'static,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<SeenUpload>>>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().enumerate() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let head = read_head(&mut s).unwrap_or_default().to_ascii_lowercase();
            let length: u64 = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let mut entry = SeenUpload {
                expect: head.contains("expect: 100-continue"),
                body_bytes: 0,
            };
            let early = answer(index, &head);
            if let Some(reply) = &early {
                let _ = s.write_all(reply.as_bytes());
                // Only a client that sends regardless has bytes coming now.
                let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
            }
            // Whatever body comes (all of it, when there was no early reply).
            let mut chunk = vec![0u8; 64 * 1024];
            while entry.body_bytes < length {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => entry.body_bytes += n as u64,
                }
            }
            log.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
            if early.is_none() {
                let body = r#"{"errcode":0,"errmsg":"","type":"file","media_id":"MEDIA-OK","created_at":"1"}"#;
                let _ = s.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        }
    });
    (base, seen)
}

fn upload_source(tag: &str, len: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = tempdir(tag);
    let path = dir.join("big.bin");
    std::fs::write(&path, pattern(len)).expect("write");
    (dir, path)
}

/// 417 Expectation Failed: the same upload goes again without `Expect`.
#[test]
fn a_server_refusing_expect_gets_the_upload_without_it() {
    let (base, seen) = early_answer_server(|index, head| {
        (index == 0 && head.contains("expect:")).then(|| {
            "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_string()
        })
    });
    let (dir, path) = upload_source("expect-417", 1536 * 1024);
    let c = new_client(&ClientOpts::at(&base));
    let (rc, media_id, msg) = upload_file(&c, &path);
    assert_eq!(rc, 0, "{msg}");
    assert_eq!(media_id.as_deref(), Some("MEDIA-OK"));
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].expect && seen[0].body_bytes == 0, "{seen:?}");
    assert!(
        !seen[1].expect && seen[1].body_bytes > 1536 * 1024,
        "{seen:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A server that never answers `100 Continue` still gets the body, after
/// the short wait: half the io timeout here, since an io timeout under the
/// 1 s default would otherwise end the call before the body is sent.
#[test]
fn a_server_ignoring_expect_gets_the_body_after_a_short_wait() {
    let (base, seen) = early_answer_server(|_, _| None);
    let (dir, path) = upload_source("expect-ignored", 1024 * 1024);
    let mut o = ClientOpts::at(&base);
    o.io_ms = 400;
    let c = new_client(&o);
    let t0 = Instant::now();
    let (rc, media_id, msg) = upload_file(&c, &path);
    assert_eq!(rc, 0, "{msg}");
    assert_eq!(media_id.as_deref(), Some("MEDIA-OK"));
    assert!(t0.elapsed() < BOUND, "{:?}", t0.elapsed());
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].expect && seen[0].body_bytes > 1024 * 1024,
        "{seen:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A refusal that comes before `100 Continue` costs no upload: the errcode
/// is returned and the body was never sent. Below 1 MiB there is no
/// `Expect` (the round trip would cost more than it saves).
#[test]
fn an_answer_before_100_continue_saves_sending_the_body() {
    let (base, seen) = early_answer_server(|_, head| {
        head.contains("expect:").then(|| {
            let body = r#"{"errcode":40014,"errmsg":"invalid access_token"}"#;
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        })
    });
    let (dir, path) = upload_source("expect-early", 4 * 1024 * 1024);
    let c = new_client(&ClientOpts::at(&base));
    let (rc, _, msg) = upload_file(&c, &path);
    assert_eq!(rc, 40014, "{msg}");
    assert_clean(&msg, &secrets(), "early refusal");
    let small = dir.join("small.bin");
    std::fs::write(&small, pattern(1024 * 1024 - 1)).expect("write");
    let (rc, _, msg) = upload_file(&c, &small);
    assert_eq!(rc, 0, "{msg}");
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].expect && seen[0].body_bytes == 0, "{seen:?}");
    assert!(
        !seen[1].expect && seen[1].body_bytes >= 1024 * 1024 - 1,
        "{seen:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
