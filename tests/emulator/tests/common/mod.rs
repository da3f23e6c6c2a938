//! A tiny raw HTTP/1.1 client for the emulator's tests: exact bytes on the
//! wire, keep-alive, and partial bodies when a fault cuts a response.
#![allow(dead_code, unused_imports)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
pub use wxmedia_emulator::{fill_generated, md5_hex, Emulator, Options, Platform};

pub type Headers = Vec<(String, Vec<u8>)>;

pub struct Resp {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_bytes(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn errcode(&self) -> i64 {
        self.json()["errcode"].as_i64().unwrap_or(0)
    }
}

/// What arrived when a response may be cut short.
pub struct Partial {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub announced: Option<u64>,
    pub error: Option<io::ErrorKind>,
}

pub struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        Conn {
            r: BufReader::new(s),
        }
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        self.r.get_mut()
    }

    pub fn send_raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.r.get_mut().write_all(b)
    }

    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut b = req.into_bytes();
        b.extend_from_slice(body);
        self.send_raw(&b).expect("send request");
    }

    /// Reads the status line and headers.
    pub fn read_head(&mut self) -> io::Result<(u16, Headers)> {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no response"));
        }
        let sl = String::from_utf8_lossy(&line).into_owned();
        let status: u16 = sl
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("status line {sl:?}"))
            })?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.r.read_until(b'\n', &mut line)?;
            if line.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "eof in headers",
                ));
            }
            let l = trim_crlf(&line);
            if l.is_empty() {
                break;
            }
            if let Some(p) = l.iter().position(|c| *c == b':') {
                let k = String::from_utf8_lossy(&l[..p]).trim().to_string();
                let mut v = &l[p + 1..];
                while v.first() == Some(&b' ') {
                    v = &v[1..];
                }
                headers.push((k, v.to_vec()));
            }
        }
        Ok((status, headers))
    }

    /// Reads a whole response (Content-Length or chunked); errors if cut.
    pub fn read_response(&mut self) -> io::Result<Resp> {
        let p = self.read_partial()?;
        if let Some(e) = p.error {
            return Err(io::Error::new(e, "response cut short"));
        }
        Ok(Resp {
            status: p.status,
            headers: p.headers,
            body: p.body,
        })
    }

    /// Reads a response, keeping whatever body arrived before an error.
    pub fn read_partial(&mut self) -> io::Result<Partial> {
        let (status, headers) = self.read_head()?;
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let announced = get("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let chunked = get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let mut body = Vec::new();
        let mut error = None;
        if let Some(n) = announced {
            let mut buf = vec![0u8; 64 * 1024];
            while (body.len() as u64) < n {
                let want = ((n - body.len() as u64) as usize).min(buf.len());
                match self.r.read(&mut buf[..want]) {
                    Ok(0) => {
                        error = Some(io::ErrorKind::UnexpectedEof);
                        break;
                    }
                    Ok(k) => body.extend_from_slice(&buf[..k]),
                    Err(e) => {
                        error = Some(e.kind());
                        break;
                    }
                }
            }
        } else if chunked {
            loop {
                let mut line = Vec::new();
                if let Err(e) = self.r.read_until(b'\n', &mut line) {
                    error = Some(e.kind());
                    break;
                }
                let l = String::from_utf8_lossy(trim_crlf(&line)).into_owned();
                let size = usize::from_str_radix(l.split(';').next().unwrap_or("").trim(), 16);
                let Ok(size) = size else {
                    error = Some(io::ErrorKind::InvalidData);
                    break;
                };
                let mut chunk = vec![0u8; size + 2];
                if let Err(e) = self.r.read_exact(&mut chunk) {
                    error = Some(e.kind());
                    break;
                }
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if status != 204 && status != 304 && !(100..200).contains(&status) {
            if let Err(e) = self.r.read_to_end(&mut body) {
                error = Some(e.kind());
            }
        }
        Ok(Partial {
            status,
            headers,
            body,
            announced,
            error,
        })
    }

    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.send("GET", path, headers, b"");
        self.read_response().expect("response")
    }
}

fn trim_crlf(l: &[u8]) -> &[u8] {
    let mut l = l;
    while let Some((&last, rest)) = l.split_last() {
        if last == b'\n' || last == b'\r' {
            l = rest;
        } else {
            break;
        }
    }
    l
}

/// One request on a fresh connection.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    Conn::open(addr).get(path, headers)
}

pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut c = Conn::open(addr);
    c.send("POST", path, headers, body);
    c.read_response().expect("response")
}

pub fn admin(addr: SocketAddr, path: &str, body: Value) -> Value {
    let r = post(
        addr,
        &format!("/__admin/{path}"),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(
        r.status,
        200,
        "admin {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

pub fn stats(addr: SocketAddr) -> Value {
    get(addr, "/__admin/stats", &[]).json()
}

pub fn start(platform: Platform) -> Emulator {
    start_with(Options {
        platform,
        access_tokens: vec!["TOK".to_string()],
        ..Default::default()
    })
}

pub fn start_with(o: Options) -> Emulator {
    Emulator::start(o).expect("start emulator")
}

pub fn generated(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_generated(seed, offset, &mut v);
    v
}

pub fn add_generated(addr: SocketAddr, id: &str, size: u64, seed: u64, extra: Value) -> Value {
    let mut v = serde_json::json!({"media_id": id, "size": size, "seed": seed});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    admin(addr, "media", v)
}

pub fn media_get(id: &str) -> String {
    format!("/cgi-bin/media/get?access_token=TOK&media_id={id}")
}

/// Builds a multipart/form-data body from (headers-of-part, content) pairs.
pub fn multipart(boundary: &str, parts: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (head, data) in parts {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        b.extend_from_slice(head);
        b.extend_from_slice(b"\r\n\r\n");
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

/// Uploads one `media` part with this filename; returns the response.
pub fn upload(addr: SocketAddr, ty: &str, filename: &str, data: &[u8]) -> Resp {
    let head = format!(
        "Content-Disposition: form-data; name=\"media\"; filename=\"{filename}\"; filelength={}\r\nContent-Type: application/octet-stream",
        data.len()
    );
    let body = multipart("XyZbOuNdArY", &[(head.as_bytes(), data)]);
    post(
        addr,
        &format!("/cgi-bin/media/upload?access_token=TOK&type={ty}"),
        &[("Content-Type", "multipart/form-data; boundary=XyZbOuNdArY")],
        &body,
    )
}

pub fn jpeg(len: usize) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
    v.extend((0..len.saturating_sub(4)).map(|i| (i % 251) as u8));
    v
}

pub fn png(len: usize) -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    v.extend((0..len.saturating_sub(8)).map(|i| (i % 13) as u8));
    v
}

pub fn amr(len: usize) -> Vec<u8> {
    let mut v = b"#!AMR\n".to_vec();
    v.extend((0..len.saturating_sub(6)).map(|i| (i % 7) as u8));
    v
}

pub fn mp4(len: usize) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 0x20];
    v.extend_from_slice(b"ftypisom");
    v.extend((0..len.saturating_sub(12)).map(|i| (i % 17) as u8));
    v
}

pub fn sha256_hex(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// POSTs a JSON body to a WeChat endpoint with token TOK.
pub fn post_json(addr: SocketAddr, endpoint: &str, body: &Value) -> Resp {
    post(
        addr,
        &format!("/cgi-bin/{endpoint}?access_token=TOK"),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// `media/upload_by_url` with the usual fields; `extra` overrides them.
pub fn start_job(addr: SocketAddr, url: &str, md5: &str, extra: Value) -> Resp {
    let mut v = serde_json::json!({
        "scene": 1, "type": "video", "filename": "clip.mp4", "url": url, "md5": md5,
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    post_json(addr, "media/upload_by_url", &v)
}

/// `media/get_upload_by_url_result` for this job.
pub fn job_result(addr: SocketAddr, jobid: &str) -> Value {
    post_json(
        addr,
        "media/get_upload_by_url_result",
        &serde_json::json!({ "jobid": jobid }),
    )
    .json()
}

/// Polls a job until it leaves status 1 (at most 20 s); returns the last answer.
pub fn wait_job(addr: SocketAddr, jobid: &str) -> Value {
    let t = std::time::Instant::now();
    loop {
        let v = job_result(addr, jobid);
        assert_eq!(v["errcode"], 0, "{v}");
        if v["status"] != 1 || t.elapsed() > Duration::from_secs(20) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Starts a job and returns its jobid (asserting errcode 0).
pub fn job(addr: SocketAddr, url: &str, md5: &str, extra: Value) -> String {
    let r = start_job(addr, url, md5, extra).json();
    assert_eq!(r["errcode"], 0, "{r}");
    assert_eq!(r["errmsg"], "ok");
    r["jobid"].as_str().expect("jobid").to_string()
}

/// A tiny HTTP server on 127.0.0.1 that answers every request head with
/// `respond(head)` and closes the connection; `requests` are the heads seen.
pub struct RawServer {
    pub addr: SocketAddr,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn raw_server(respond: impl Fn(&str) -> Vec<u8> + Send + 'static) -> RawServer {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reqs = requests.clone();
    // Serves until the test process ends.
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                match s.read(&mut b) {
                    Ok(1) => head.push(b[0]),
                    _ => break,
                }
            }
            let h = String::from_utf8_lossy(&head).into_owned();
            let out = respond(&h);
            reqs.lock().unwrap().push(h);
            let _ = s.write_all(&out);
            let _ = s.flush();
        }
    });
    RawServer { addr, requests }
}

/// A port on 127.0.0.1 nobody listens on (bound, then closed).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
