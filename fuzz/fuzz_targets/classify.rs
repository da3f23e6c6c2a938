//! Response classification: a media/get answer built from fuzz input
//! (status, headers, body) is a file, a video_url or an error, never a
//! panic; a file's bytes are the body's, and an answer without
//! Content-Disposition typed as JSON or text is never a file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Read;
use std::time::Duration;
use ureq::http::Response;
use ureq::Body;
use wxmedia::http::{classify, AnswerFrom, MediaAnswer};

const STATUSES: [u16; 8] = [200, 206, 416, 302, 404, 500, 503, 204];
const NAMES: [&str; 8] = [
    "content-type",
    "content-disposition",
    "content-length",
    "content-range",
    "content-encoding",
    "error-code",
    "error-msg",
    "x-other",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    // Header lines (name index byte, value up to '\n'), then "\n\n", then the body.
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let mut b = Response::builder().status(STATUSES[(sel as usize) % STATUSES.len()]);
    for line in head.split(|&c| c == b'\n') {
        let Some((&n, value)) = line.split_first() else {
            continue;
        };
        if let Ok(v) = ureq::http::HeaderValue::from_bytes(value) {
            b = b.header(NAMES[(n as usize) % NAMES.len()], v);
        }
    }
    let Ok(resp) = b.body(Body::builder().data(body.to_vec())) else {
        return;
    };
    let from = if sel & 0x80 == 0 {
        AnswerFrom::Api
    } else {
        AnswerFrom::VideoUrl
    };
    let typed_text = resp.headers().get("content-disposition").is_none()
        && resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                let t = t.trim().to_ascii_lowercase();
                let essence = t.split(';').next().unwrap_or("").trim();
                essence.starts_with("text/") || essence == "application/json"
            });
    let error_code = resp.headers().get("error-code").is_some();
    match classify(resp, Duration::from_secs(5), from) {
        Ok(MediaAnswer::File {
            prefix, mut reader, ..
        }) => {
            assert!(!typed_text || error_code, "a JSON/text answer became a file");
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
            let mut all = prefix;
            all.extend_from_slice(&rest);
            assert!(all.len() <= body.len());
        }
        Ok(MediaAnswer::VideoUrl(u)) => {
            assert!(!u.is_empty() || body.len() >= 14);
        }
        Err(e) => {
            let _ = e.code();
        }
    }
});
