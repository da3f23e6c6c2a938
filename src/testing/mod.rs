//! A scripted transport for unit tests: each connection the agent opens
//! takes the next answer of a script and records the bytes of the request
//! sent on it. It plugs in under the same agent configuration and
//! cancellation layer as the real sockets (`http::agent_over`), so the
//! library code above it (planner, token source, retry loop) runs as in
//! production, with exact control over what each request gets back.
//! Every answer closes its connection, so one connection is one request.

mod client;
mod planner;
mod tokens;

use crate::client::Client;
use crate::config::{Config, Platform};
use crate::http::{agent_over, HttpSettings};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

/// What one connection gets.
pub enum Answer {
    /// These bytes (a whole HTTP/1.1 answer), then the connection closes.
    Bytes(Vec<u8>),
    /// As `Bytes`, after a pause (so that other threads pile up meanwhile).
    Slow(Duration, Vec<u8>),
    /// The request arrives, then the connection is reset with no answer.
    Drop,
    /// The connection is refused: no byte of the request leaves.
    Refuse,
    /// The Range the request asks for, out of `data`, as a 206; reset
    /// after `cut_after` bytes of body when given.
    Range {
        data: Arc<Vec<u8>>,
        cut_after: Option<usize>,
    },
}

/// The answers still to give, and the requests seen (one per connection).
#[derive(Default)]
pub struct Script {
    answers: Mutex<VecDeque<Answer>>,
    requests: Mutex<Vec<Vec<u8>>>,
}

impl Script {
    pub fn new(answers: impl IntoIterator<Item = Answer>) -> Arc<Script> {
        Arc::new(Script {
            answers: Mutex::new(answers.into_iter().collect()),
            requests: Mutex::new(Vec::new()),
        })
    }

    /// Every request sent so far, as text.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.requests)
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    /// The Range header of each request (None where there was none).
    pub fn ranges(&self) -> Vec<Option<(u64, u64)>> {
        lock(&self.requests).iter().map(|r| range_of(r)).collect()
    }

    /// Answers not taken yet.
    pub fn left(&self) -> usize {
        lock(&self.answers).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn range_of(request: &[u8]) -> Option<(u64, u64)> {
    let text = String::from_utf8_lossy(request);
    let value = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("range")
            .then(|| v.trim().to_string())
    })?;
    let (a, b) = value.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A whole answer with a body, `Content-Length` and `Connection: close`.
pub fn http(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A 200 JSON answer.
pub fn json(v: serde_json::Value) -> Answer {
    Answer::Bytes(http(
        "200 OK",
        &[("Content-Type", "application/json")],
        v.to_string().as_bytes(),
    ))
}

/// A 206 of `data[start..=end]` (the end bounded by the data), and the
/// whole answer's length without its body.
fn partial(data: &[u8], (start, end): (u64, u64)) -> (Vec<u8>, usize) {
    let total = data.len() as u64;
    let end = end.min(total.saturating_sub(1));
    let body = &data[start as usize..=end as usize];
    let answer = http(
        "206 Partial Content",
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", &format!("bytes {start}-{end}/{total}")),
        ],
        body,
    );
    let head = answer.len() - body.len();
    (answer, head)
}

/// The connector: one scripted transport per connection.
#[derive(Debug)]
pub struct Scripted(pub Arc<Script>);

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Script")
    }
}

impl Connector<()> for Scripted {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let answer = lock(&self.0.answers).pop_front();
        let Some(answer) = answer else {
            // Past the script: as if nobody listened (nothing was sent).
            return Err(ureq::Error::ConnectionFailed);
        };
        if matches!(answer, Answer::Refuse) {
            return Err(ureq::Error::ConnectionFailed);
        }
        let index = {
            let mut requests = lock(&self.0.requests);
            requests.push(Vec::new());
            requests.len() - 1
        };
        Ok(Some(Box::new(ScriptedTransport {
            script: self.0.clone(),
            index,
            answer: Some(answer),
            out: Vec::new(),
            at: 0,
            reset_at: None,
            buffers: LazyBuffers::new(64 * 1024, 64 * 1024),
            open: true,
        })))
    }
}

#[derive(Debug)]
struct ScriptedTransport {
    script: Arc<Script>,
    index: usize,
    /// Turned into `out` at the first wait for input, once the request is sent.
    answer: Option<Answer>,
    out: Vec<u8>,
    at: usize,
    /// The connection is reset once `at` reaches this.
    reset_at: Option<usize>,
    buffers: LazyBuffers,
    open: bool,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Answer")
    }
}

impl ScriptedTransport {
    fn prepare(&mut self) {
        let Some(answer) = self.answer.take() else {
            return;
        };
        match answer {
            Answer::Bytes(b) => self.out = b,
            Answer::Slow(pause, b) => {
                std::thread::sleep(pause);
                self.out = b;
            }
            Answer::Drop | Answer::Refuse => self.reset_at = Some(0),
            Answer::Range { data, cut_after } => {
                let asked = range_of(&lock(&self.script.requests)[self.index]);
                let asked = asked.unwrap_or((0, data.len() as u64 - 1));
                let (answer, head) = partial(&data, asked);
                self.reset_at = cut_after.map(|n| (head + n).min(answer.len()));
                self.out = answer;
            }
        }
    }
}

impl Transport for ScriptedTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, _timeout: NextTimeout) -> Result<(), ureq::Error> {
        let sent = self.buffers.output()[..amount].to_vec();
        lock(&self.script.requests)[self.index].extend_from_slice(&sent);
        Ok(())
    }

    fn await_input(&mut self, _timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.prepare();
        let end = self.reset_at.unwrap_or(self.out.len());
        if self.at >= end {
            self.open = false;
            if self.reset_at.is_some() {
                return Err(ureq::Error::Io(std::io::ErrorKind::ConnectionReset.into()));
            }
            return Ok(false);
        }
        // Pieces of at most 4 KiB, as a socket would hand them over.
        let buf = self.buffers.input_append_buf();
        let n = buf.len().min(end - self.at).min(4096);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.buffers.input_appended(n);
        self.at += n;
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        self.open
    }
}

/// Where scripted clients "connect": nothing listens there, nothing is dialled.
pub const BASE_URL: &str = "http://127.0.0.1:9";

/// An agent configured as a client's, over `script`.
pub fn agent(script: &Arc<Script>) -> ureq::Agent {
    agent_over(
        &HttpSettings {
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(5),
            pool_size: 4,
            ca_file: None,
        },
        Scripted(script.clone()),
    )
    .expect("agent")
}

/// A WeCom client with a static token, 1 ms backoff, adjusted by `edit`,
/// whose every connection is scripted.
pub fn client(script: &Arc<Script>, edit: impl FnOnce(&mut Config)) -> Client {
    let mut config = Config::new(Platform::WeCom);
    config.set_base_url(BASE_URL).expect("base url");
    config.set_token("scripted-token-1234").expect("token");
    config.set_retries(4, 1).expect("retries");
    edit(&mut config);
    let agent = agent_over(
        &HttpSettings {
            connect_timeout: config.connect_timeout,
            io_timeout: config.io_timeout,
            pool_size: config.parallelism as usize,
            ca_file: None,
        },
        Scripted(script.clone()),
    )
    .expect("agent");
    Client::with_agent(config, agent).expect("client")
}
