//! A raw HTTP server on loopback for hostile answers: it reads one request
//! per connection and lets a test write whatever bytes it wants back.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the raw server read it.
#[derive(Clone, Debug, Default)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// `Range: bytes=a-b` when present.
    pub range: Option<(u64, u64)>,
    pub body_len: u64,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// What follows `media_id=` in the target ("" without one).
    pub fn media_id(&self) -> &str {
        self.target.split("media_id=").nth(1).unwrap_or("")
    }
}

type Handler = dyn Fn(&Req, &mut TcpStream) + Send + Sync;

/// A plain TCP server on 127.0.0.1 that reads one request per connection
/// and lets the test write whatever it wants back. Stops when dropped.
pub struct RawServer {
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    pub requests: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Req>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawServer {
    pub fn start(handler: impl Fn(&Req, &mut TcpStream) + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s2, r2, seen2) = (stop.clone(), requests.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let (h, r, seen, stop) =
                            (handler.clone(), r2.clone(), seen2.clone(), s2.clone());
                        std::thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                            let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                            if let Some(req) = read_request(&mut stream) {
                                r.fetch_add(1, Ordering::SeqCst);
                                seen.lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push(req.clone());
                                if !stop.load(Ordering::Relaxed) {
                                    h(&req, &mut stream);
                                }
                            }
                            let _ = stream.flush();
                            let _ = stream.shutdown(std::net::Shutdown::Both);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RawServer {
            addr,
            stop,
            requests,
            seen,
            thread: Some(thread),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stopped(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request's head, read a byte at a time so that none of its body is
/// taken; None when the connection ends (or the head grows past 256 KiB)
/// first.
pub fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 256 * 1024 {
            return None;
        }
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn read_request(s: &mut TcpStream) -> Option<Req> {
    let text = read_head(s)?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let mut req = Req {
        method,
        target,
        ..Req::default()
    };
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            req.headers
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if let Some(r) = req.header("range").and_then(|v| v.strip_prefix("bytes=")) {
        if let Some((a, b)) = r.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                req.range = Some((a, b));
            }
        }
    }
    // Drain a request body (uploads) so that answering does not reset it.
    let len: u64 = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut left = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = left.min(chunk.len() as u64) as usize;
        match s.read(&mut chunk[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => left -= n as u64,
        }
    }
    req.body_len = len - left;
    Some(req)
}

/// Writes a whole response with a body and `Connection: close`.
pub fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
}

/// The bytes a hostile server serves as "the media".
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Serves `data` correctly: 206 for a Range, 200 otherwise, with a
/// Content-Disposition of `disposition` (raw bytes allowed).
pub fn serve_range(s: &mut TcpStream, req: &Req, data: &[u8], disposition: &[u8]) {
    let total = data.len() as u64;
    let mut head = Vec::new();
    let body: &[u8] = match req.range {
        Some((a, b)) if a < total => {
            let b = b.min(total - 1);
            head.extend_from_slice(
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{total}\r\nContent-Length: {}\r\n",
                    b - a + 1
                )
                .as_bytes(),
            );
            &data[a as usize..=b as usize]
        }
        _ => {
            head.extend_from_slice(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n").as_bytes(),
            );
            data
        }
    };
    head.extend_from_slice(b"Connection: close\r\nContent-Type: application/octet-stream\r\n");
    if !disposition.is_empty() {
        head.extend_from_slice(b"Content-Disposition: ");
        head.extend_from_slice(disposition);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let _ = s.write_all(&head);
    let _ = s.write_all(body);
}
