//! Garbage, half and huge requests; many keep-alive connections; the binary.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn alive(emu: &Emulator) {
    let r = get(emu.addr(), &media_get("m"), &[]);
    assert_eq!(r.body, generated(1, 0, 1000), "server no longer answers");
}

fn setup() -> Emulator {
    let emu = start(Platform::WeCom);
    add_generated(emu.addr(), "m", 1000, 1, json!({}));
    emu
}

/// Sends bytes, then reads whatever comes back until close or timeout.
fn send_and_read(emu: &Emulator, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(emu.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn garbage_requests() {
    let emu = setup();
    let cases: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\xff\xfe garbage\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /cgi-bin/media/get HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_vec(),
        b"POST /cgi-bin/media/upload?access_token=TOK&type=image HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"GET /cgi-bin/media/get?access_token=%ff%zz&media_id=%00%%% HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /cgi-bin/media/get?access_token=TOK&media_id=m HTTP/1.1\r\nHost: x\r\nRange: bytes=99999999999999999999999-\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /cgi-bin/media/get?access_token=TOK&media_id=m HTTP/1.1\r\nHost: x\r\nRange: \xff\xfe\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /__admin/faults HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\n\xff\xfe\xfd".to_vec(),
        b"POST /__admin/media HTTP/1.1\r\nHost: x\r\nContent-Length: 29\r\nConnection: close\r\n\r\n{\"size\": -1, \"data_b64\": 5}  ".to_vec(),
        b"POST /cgi-bin/media/upload?access_token=TOK&type=image HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_vec(),
        b"POST /cgi-bin/media/upload?access_token=TOK&type=image HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 40\r\nConnection: close\r\n\r\n--b\r\nContent-Disposition: form-data; nam".to_vec(),
    ];
    for c in &cases {
        let out = send_and_read(&emu, c);
        // Either an HTTP answer or a closed connection, never a hang or crash.
        if !out.is_empty() {
            assert!(
                out.starts_with(b"HTTP/1."),
                "{:?}",
                String::from_utf8_lossy(&out)
            );
        }
        alive(&emu);
    }
    // The bad-percent request was answered with an errcode (token unknown).
    let out = send_and_read(&emu, &cases[5]);
    assert!(String::from_utf8_lossy(&out).contains("\"errcode\":40001"));
}

#[test]
fn half_requests_do_not_block_others() {
    let emu = setup();
    let mut halves = Vec::new();
    for part in [
        &b"GET /cgi-bin/media/get?acc"[..],
        b"GET /cgi-bin/media/get?access_token=TOK&media_id=m HTTP/1.1\r\nHost:",
        b"POST /cgi-bin/media/upload?access_token=TOK&type=image HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n",
    ] {
        let mut s = TcpStream::connect(emu.addr()).unwrap();
        s.write_all(part).unwrap();
        halves.push(s);
    }
    alive(&emu);
    // Half requests closed abruptly.
    for s in halves.drain(..) {
        drop(s);
    }
    let mut s = TcpStream::connect(emu.addr()).unwrap();
    s.write_all(b"GET /cgi-bin/media/get?access_token=TOK&media_id=m HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n")
        .unwrap();
    drop(s); // closed before reading the answer
    alive(&emu);
}

#[test]
fn huge_headers() {
    let emu = setup();
    let mut req =
        b"GET /cgi-bin/media/get?access_token=TOK&media_id=m HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..2000 {
        req.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(500)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let out = send_and_read(&emu, &req);
    if !out.is_empty() {
        assert!(
            out.starts_with(b"HTTP/1.1 431") || out.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&out[..out.len().min(100)])
        );
    }
    // One huge header line.
    let mut req =
        b"GET /cgi-bin/media/get?access_token=TOK&media_id=m HTTP/1.1\r\nHost: x\r\nX-Big: "
            .to_vec();
    req.extend(std::iter::repeat(b'b').take(4 * 1024 * 1024));
    req.extend_from_slice(b"\r\n\r\n");
    let _ = send_and_read(&emu, &req);
    // A huge URL.
    let mut req = b"GET /cgi-bin/media/get?access_token=TOK&media_id=".to_vec();
    req.extend(std::iter::repeat(b'x').take(1024 * 1024));
    req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    let _ = send_and_read(&emu, &req);
    alive(&emu);
}

#[test]
fn many_concurrent_keepalive_connections() {
    let emu = setup();
    let a = emu.addr();
    add_generated(a, "big", 4 * 1024 * 1024, 9, json!({}));
    const N: usize = 40;
    let mut conns: Vec<Conn> = (0..N).map(|_| Conn::open(a)).collect();
    // Every connection makes a request and stays open.
    for c in conns.iter_mut() {
        assert_eq!(c.get(&media_get("m"), &[]).body.len(), 1000);
    }
    let st = stats(a);
    assert_eq!(st["current_connections"], N);
    assert_eq!(st["max_concurrent_connections"], N);
    // Then all of them at once, several requests each, from threads.
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            std::thread::spawn(move || {
                for k in 0..5u64 {
                    let s = (i as u64 * 7919 + k * 104_729) % (4 * 1024 * 1024 - 65536);
                    let h = format!("bytes={}-{}", s, s + 65535);
                    let r = c.get(&media_get("big"), &[("Range", &h)]);
                    assert_eq!(r.status, 206);
                    assert_eq!(r.body, generated(9, s, 65536));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Closed connections are no longer counted (closing is asynchronous).
    let mut cur = u64::MAX;
    for _ in 0..100 {
        cur = stats(a)["current_connections"].as_u64().unwrap();
        if cur == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(cur, 0);
    let st = stats(a);
    assert_eq!(st["max_concurrent_connections"], N);
    assert_eq!(st["requests"]["media/get"], N * 6);
}

#[test]
fn admin_traffic_is_not_counted_as_connections() {
    let emu = setup();
    for _ in 0..3 {
        stats(emu.addr());
    }
    assert_eq!(stats(emu.addr())["max_concurrent_connections"], 0);
}

#[test]
fn binary_prints_address_and_stops_on_sigterm() {
    let exe = env!("CARGO_BIN_EXE_wxmedia-emulator");
    let mut child = Command::new(exe)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--platform",
            "official",
            "--access-token",
            "BIN",
            "--token-ttl",
            "60",
        ])
        .args([
            "--corpid",
            "wxID",
            "--secret",
            "SEC",
            "--limit",
            "image=100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn emulator binary");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().expect("first line is the address");
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let v = get(
        addr,
        "/cgi-bin/token?grant_type=client_credential&appid=wxID&secret=SEC",
        &[],
    )
    .json();
    assert_eq!(v["expires_in"], 60);
    let r = get(addr, "/cgi-bin/media/get?access_token=BIN&media_id=x", &[]);
    assert_eq!(r.errcode(), 40007);
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    let r = upload_tok(addr, "BIN", &jpeg(101));
    assert_eq!(r.errcode(), 40009);

    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("emulator did not stop on SIGTERM");
    };
    assert_eq!(status.code(), Some(0));

    // Bad arguments: exit 2, nothing on stdout.
    let o = Command::new(exe)
        .args(["--platform", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
}

fn upload_tok(addr: std::net::SocketAddr, tok: &str, data: &[u8]) -> Resp {
    let body = multipart(
        "bb",
        &[(
            b"Content-Disposition: form-data; name=\"media\"; filename=\"a.jpg\"",
            data,
        )],
    );
    post(
        addr,
        &format!("/cgi-bin/media/upload?access_token={tok}&type=image"),
        &[("Content-Type", "multipart/form-data; boundary=bb")],
        &body,
    )
}

#[test]
fn extreme_admin_values_do_not_panic() {
    let emu = setup();
    let a = emu.addr();
    admin(
        a,
        "tokens",
        json!({"token": "FOREVER", "ttl_secs": u64::MAX}),
    );
    admin(
        a,
        "faults",
        json!({"kind": "reset", "after_bytes": u64::MAX}),
    );
    admin(
        a,
        "faults",
        json!({"kind": "short_body", "after_bytes": u64::MAX}),
    );
    admin(a, "faults", json!({"kind": "http_status", "status": 42}));
    admin(a, "faults", json!({"kind": "throttle", "bytes_per_sec": 0}));
    let r = get(a, "/cgi-bin/media/get?access_token=FOREVER&media_id=m", &[]);
    assert_eq!(r.body.len(), 1000); // reset never reached
    let mut c = Conn::open(a);
    c.send("GET", &media_get("m"), &[], b"");
    let p = c.read_partial().unwrap();
    assert!(p.body.is_empty()); // all bytes "fewer"
    assert_eq!(get(a, &media_get("m"), &[]).status, 500);
    // throttle at 0 B/s is treated as 1 B/s: the first byte comes, then a wait.
    let mut c = Conn::open(a);
    c.stream()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    c.send("GET", &media_get("m"), &[], b"");
    let p = c.read_partial().unwrap();
    assert!(p.body.len() < 10, "{}", p.body.len());
    admin(a, "clock", json!({"advance_secs": u64::MAX}));
    admin(a, "clock", json!({"advance_secs": u64::MAX}));
    assert_eq!(get(a, &media_get("m"), &[]).errcode(), 40007); // expired
    let r = post(
        a,
        "/__admin/media",
        &[],
        b"{\"size\": 10, \"seed\": 18446744073709551615}",
    );
    assert_eq!(r.status, 200);
}
