//! A real S3-compatible server for the object-store tests: versitygw (it
//! checks SigV4 signatures, so a wrong secret is refused), installed by
//! `make versitygw` into build/tools/bin, started on loopback with a
//! fresh posix directory and killed on drop. And the tests' own view of
//! the bucket (create it, read an object back, list uploads), signed with
//! the same crate the library uses: versitygw checks every signature.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const S3_ACCESS: &str = "wxm-test-access";
pub const S3_SECRET: &str = "wxm-test-secret-Hq7Z2pL0";
pub const S3_REGION: &str = "us-east-1";

/// The cached binary; a test that needs it fails (never skips) without it.
pub fn versitygw_bin() -> PathBuf {
    // The library's tests run from the repository's root, the CLI's from
    // cli/ (which reuses this file): the one cached binary either way.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = here
        .ancestors()
        .map(|d| d.join("build/tools/bin/versitygw"))
        .find(|b| b.is_file())
        .unwrap_or_else(|| here.join("build/tools/bin/versitygw"));
    assert!(
        bin.is_file(),
        "{} is missing: run `make versitygw` (or `bash mk/versitygw.sh`) to install it",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub struct Versitygw {
    child: Child,
    pub addr: String,
    pub dir: PathBuf,
}

impl Versitygw {
    pub fn start() -> Versitygw {
        let bin = versitygw_bin();
        let dir = super::tempdir("versitygw");
        // A port freed just before may be taken by another test: a few tries.
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let mut child = Command::new(&bin)
                .args(["--access", S3_ACCESS, "--secret", S3_SECRET])
                .args(["--region", S3_REGION, "--port", &addr, "--quiet"])
                .arg("posix")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn versitygw");
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    eprintln!("versitygw on {addr} exited {status}: {err}");
                    break;
                }
                if TcpStream::connect(&addr).is_ok() {
                    return Versitygw { child, addr, dir };
                }
                assert!(
                    Instant::now() < deadline,
                    "versitygw did not listen on {addr}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("versitygw did not start");
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn view(&self, bucket: &str) -> S3View {
        S3View::new(&self.endpoint(), bucket)
    }
}

impl Drop for Versitygw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The tests' own requests to a bucket.
pub struct S3View {
    bucket: rusty_s3::Bucket,
    creds: rusty_s3::Credentials,
    agent: ureq::Agent,
}

/// An object read back: its sha256, length and headers.
#[derive(Debug)]
pub struct Object {
    pub sha256: String,
    pub len: u64,
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
    pub media_id_meta: Option<String>,
}

const SIGN: Duration = Duration::from_secs(600);

impl S3View {
    pub fn new(endpoint: &str, bucket: &str) -> S3View {
        let bucket = rusty_s3::Bucket::new(
            endpoint.parse().expect("endpoint"),
            rusty_s3::UrlStyle::Path,
            bucket.to_string(),
            S3_REGION,
        )
        .expect("bucket");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        S3View {
            bucket,
            creds: rusty_s3::Credentials::new(S3_ACCESS, S3_SECRET),
            agent,
        }
    }

    pub fn create_bucket(&self) {
        use rusty_s3::S3Action;
        let url = self.bucket.create_bucket(&self.creds).sign(SIGN);
        let mut r = self
            .agent
            .put(url.as_str())
            .send(&[][..])
            .expect("create bucket");
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 200, "create bucket: {body}");
    }

    /// The object, streamed through sha256; None when there is none.
    pub fn object(&self, key: &str) -> Option<Object> {
        use rusty_s3::S3Action;
        let url = self.bucket.get_object(Some(&self.creds), key).sign(SIGN);
        let r = self.agent.get(url.as_str()).call().expect("get object");
        let status = r.status().as_u16();
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "get object {key}");
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (content_type, content_disposition, media_id_meta) = (
            h("content-type"),
            h("content-disposition"),
            h("x-amz-meta-wxmedia-media-id"),
        );
        let mut reader = r.into_body().into_with_config().limit(u64::MAX).reader();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = reader.read(&mut buf).expect("object body");
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            len += n as u64;
        }
        let sha256 = ctx
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(Object {
            sha256,
            len,
            content_type,
            content_disposition,
            media_id_meta,
        })
    }

    /// The upload ids in progress in the bucket (ListMultipartUploads).
    pub fn uploads(&self) -> Vec<String> {
        let url = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            rusty_s3::Method::Get,
            self.bucket.base_url().clone(),
            self.creds.key(),
            self.creds.secret(),
            None,
            S3_REGION,
            SIGN.as_secs(),
            [("uploads", "")].into_iter(),
            std::iter::empty(),
        );
        let mut r = self.agent.get(url.as_str()).call().expect("list uploads");
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().expect("body");
        assert_eq!(status, 200, "list uploads: {body}");
        body.split("<UploadId>")
            .skip(1)
            .filter_map(|s| s.split_once("</UploadId>").map(|(id, _)| id.to_string()))
            .collect()
    }

    /// The parts of an upload: (number, size).
    pub fn parts(&self, key: &str, upload_id: &str) -> Vec<(u16, u64)> {
        use rusty_s3::S3Action;
        let url = self
            .bucket
            .list_parts(Some(&self.creds), key, upload_id)
            .sign(SIGN);
        let mut r = self.agent.get(url.as_str()).call().expect("list parts");
        let body = r.body_mut().read_to_string().expect("body");
        let parsed = rusty_s3::actions::ListParts::parse_response(&body).expect("ListParts");
        parsed.parts.iter().map(|p| (p.number, p.size)).collect()
    }
}

/// A fault the relay injects into one request.
#[derive(Clone, Copy, Debug)]
pub enum S3Fault {
    /// Answer this HTTP status with an S3 error body, without forwarding.
    Status(u16),
    /// Forward the head and this many body bytes, then reset the connection.
    ResetAfter(u64),
    /// Forward the request with the body's byte at this offset flipped.
    Corrupt(u64),
    /// Forward the request, let the server act on it, and reset the
    /// connection instead of relaying its answer (an answer lost).
    DropAnswer,
}

/// A test-only TCP relay in front of versitygw that injects faults into
/// matching requests. Each request gets a connection of its own (the
/// relay asks the server to close after it), so a fault can be aimed at
/// one request. Stops when dropped.
pub struct FaultyRelay {
    pub addr: String,
    faults: std::sync::Arc<std::sync::Mutex<Vec<(String, S3Fault)>>>,
    pub fired: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The server's status line and S3 code for each `Corrupt` request.
    pub answers: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FaultyRelay {
    pub fn start(upstream: &str) -> FaultyRelay {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let faults: Arc<Mutex<Vec<(String, S3Fault)>>> = Arc::default();
        let fired = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let answers: Arc<Mutex<Vec<String>>> = Arc::default();
        let answers2 = answers.clone();
        let (f2, fired2, stop2, up) = (
            faults.clone(),
            fired.clone(),
            stop.clone(),
            upstream.to_string(),
        );
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (f, fired, up, a) =
                            (f2.clone(), fired2.clone(), up.clone(), answers2.clone());
                        std::thread::spawn(move || relay_one(client, &up, &f, &fired, &a));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultyRelay {
            addr,
            faults,
            fired,
            answers,
            stop,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues `fault` for the next request whose request line contains
    /// every `*`-separated piece of `matching`, `count` times.
    pub fn fault(&self, matching: &str, fault: S3Fault, count: usize) {
        let mut q = self.faults.lock().expect("faults");
        for _ in 0..count {
            q.push((matching.to_string(), fault));
        }
    }

    pub fn fired(&self) -> usize {
        self.fired.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for FaultyRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn relay_one(
    mut client: TcpStream,
    upstream: &str,
    faults: &std::sync::Mutex<Vec<(String, S3Fault)>>,
    fired: &std::sync::atomic::AtomicUsize,
    answers: &std::sync::Mutex<Vec<String>>,
) {
    use std::io::Write;
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    // The request head, and whatever body bytes came with it.
    let mut buf = Vec::new();
    let mut piece = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match client.read(&mut piece) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&piece[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut rest = buf[head_end..].to_vec();
    let line = head.lines().next().unwrap_or("").to_string();
    let body_len: u64 = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let fault = {
        let mut q = faults.lock().expect("faults");
        q.iter()
            .position(|(m, _)| m.split('*').all(|p| line.contains(p)))
            .map(|i| q.remove(i).1)
    };
    if fault.is_some() {
        fired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    if let Some(S3Fault::Status(status)) = fault {
        // Read the body first, as a server would, then answer.
        let mut left = body_len.saturating_sub(rest.len() as u64);
        while left > 0 {
            match client.read(&mut piece) {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n as u64),
            }
        }
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>injected by the test relay</Message></Error>",
            if status == 503 { "SlowDown" } else { "InternalError" }
        );
        let _ = write!(
            client,
            "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.shutdown(std::net::Shutdown::Both);
        return;
    }
    // One request per connection: the server closes after answering.
    let mut new_head = String::new();
    for l in head.split("\r\n").filter(|l| !l.is_empty()) {
        if !l.to_ascii_lowercase().starts_with("connection:") {
            new_head.push_str(l);
            new_head.push_str("\r\n");
        }
    }
    new_head.push_str("Connection: close\r\n\r\n");
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    if up.write_all(new_head.as_bytes()).is_err() {
        return;
    }
    if let Some(S3Fault::ResetAfter(n)) = fault {
        let mut sent = 0u64;
        loop {
            let take = (n - sent).min(rest.len() as u64) as usize;
            let _ = up.write_all(&rest[..take]);
            sent += take as u64;
            if sent >= n || sent >= body_len {
                break;
            }
            match client.read(&mut piece) {
                Ok(0) | Err(_) => break,
                Ok(k) => rest = piece[..k].to_vec(),
            }
        }
        // SO_LINGER 0: close with a RST, as a crashed server would.
        let _ = socket_linger_zero(&client);
        drop(client);
        drop(up);
        return;
    }
    if let Some(S3Fault::Corrupt(at)) = fault {
        // Forward the body ourselves, flipping one byte on the way.
        let mut off = 0u64;
        loop {
            if at >= off && at < off + rest.len() as u64 {
                rest[(at - off) as usize] ^= 0xff;
            }
            if up.write_all(&rest).is_err() {
                return;
            }
            off += rest.len() as u64;
            if off >= body_len {
                break;
            }
            match client.read(&mut piece) {
                Ok(0) | Err(_) => return,
                Ok(k) => rest = piece[..k].to_vec(),
            }
        }
        // The server's answer to the damaged body, noted and relayed.
        let mut answer = Vec::new();
        let _ = up.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer).to_string();
        let status = text.lines().next().unwrap_or("").to_string();
        let code = text
            .split("<Code>")
            .nth(1)
            .and_then(|c| c.split("</Code>").next())
            .unwrap_or("");
        answers
            .lock()
            .expect("answers")
            .push(format!("{status} {code}"));
        let _ = client.write_all(&answer);
        let _ = client.shutdown(std::net::Shutdown::Both);
        return;
    }
    if up.write_all(&rest).is_err() {
        return;
    }
    if let Some(S3Fault::DropAnswer) = fault {
        let mut left = body_len.saturating_sub(rest.len() as u64);
        while left > 0 {
            match client.read(&mut piece) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if up.write_all(&piece[..n]).is_err() {
                        return;
                    }
                    left = left.saturating_sub(n as u64);
                }
            }
        }
        // The server's whole answer (it closes after it), thrown away.
        let mut answer = Vec::new();
        let _ = up.read_to_end(&mut answer);
        let _ = socket_linger_zero(&client);
        return;
    }
    let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), up.try_clone()) else {
        return;
    };
    let pump = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
    });
    let _ = std::io::copy(&mut up, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = up.shutdown(std::net::Shutdown::Both);
    let _ = pump.join();
}

fn socket_linger_zero(s: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a live socket fd and a properly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
