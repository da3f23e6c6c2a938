//! The download planner (`range::next_request`, `ChunkCursor`,
//! `check_partial`) driving whole downloads through scripted 206 answers.

use super::{client, http, Answer, Script};
use crate::download::{DownloadOptions, Endpoint, Sink};
use crate::error::{Error, Result};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Collects what the download hands over, checking that it comes in order.
#[derive(Default)]
struct Collect {
    data: Vec<u8>,
    size: Option<u64>,
}

impl Sink for Collect {
    fn size_known(&mut self, size: u64) -> Result<()> {
        self.size = Some(size);
        Ok(())
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        assert_eq!(offset, self.data.len() as u64, "bytes out of order");
        self.data.extend_from_slice(data);
        Ok(())
    }
}

fn media(len: usize) -> Arc<Vec<u8>> {
    Arc::new((0..len).map(|i| (i * 31 + i / 253) as u8).collect())
}

fn download(c: &crate::client::Client) -> (Result<crate::download::MediaInfo>, Collect) {
    let mut sink = Collect::default();
    let got = c.download(
        &DownloadOptions {
            media_id: "m",
            endpoint: Endpoint::Media,
            start: 0,
            in_order_until: 0,
            cancel: Arc::new(AtomicBool::new(false)),
        },
        &mut sink,
    );
    (got, sink)
}

fn serve(data: &Arc<Vec<u8>>, cut_after: Option<usize>) -> Answer {
    Answer::Range {
        data: data.clone(),
        cut_after,
    }
}

#[test]
fn a_download_asks_chunk_by_chunk_and_resumes_a_cut_body_at_an_aligned_offset() {
    let data = media(3000);
    let script = Script::new([
        serve(&data, None),
        // The second chunk is cut 500 bytes into its body.
        serve(&data, Some(500)),
        serve(&data, None),
        serve(&data, None),
    ]);
    let c = client(&script, |cfg| cfg.set_chunk_size(1024).expect("chunk"));
    let (got, sink) = download(&c);
    let info = got.expect("download");
    assert_eq!(info.size, Some(3000));
    assert_eq!(sink.size, Some(3000));
    assert!(sink.data == *data, "the bytes differ");
    // 1024 + 500 bytes arrived: the retry starts at the 16-aligned floor
    // (1520; the 4 bytes it gets again are skipped) and asks a whole chunk
    // from there (one connection has no chunk boundaries to keep); the
    // last request stops at the size the first answer gave.
    assert_eq!(
        script.ranges(),
        [
            Some((0, 1023)),
            Some((1024, 2047)),
            Some((1520, 2543)),
            Some((2544, 2999)),
        ]
    );
    assert_eq!(script.left(), 0);
}

#[test]
fn a_parallel_download_covers_the_media_once_with_aligned_chunks() {
    let len = 3 * 256 * 1024 + 1000;
    let data = media(len);
    let script = Script::new((0..64).map(|_| serve(&data, None)));
    let c = client(&script, |cfg| {
        cfg.set_chunk_size(256 * 1024).expect("chunk");
        cfg.set_parallelism(3).expect("parallelism");
    });
    let (got, sink) = download(&c);
    assert_eq!(got.expect("download").size, Some(len as u64));
    assert!(sink.data == *data, "the bytes differ");
    // Past the first request (which learns the size), the chunks asked for
    // tile the rest exactly, each starting 16-aligned.
    let mut ranges: Vec<(u64, u64)> = script
        .ranges()
        .into_iter()
        .map(|r| r.expect("a Range"))
        .collect();
    let first = ranges.remove(0);
    assert_eq!(first.0, 0);
    ranges.sort();
    let mut next = first.1 + 1;
    for (a, b) in ranges {
        assert_eq!(a, next, "a gap or an overlap at {a}");
        assert_eq!(a % 16, 0, "unaligned start {a}");
        next = b + 1;
    }
    assert_eq!(next, len as u64);
}

#[test]
fn a_206_for_another_range_is_refused_not_written() {
    let data = media(3000);
    // Asked for 0-1023, the server answers 16-1039 (every time).
    let wrong = http(
        "206 Partial Content",
        &[("Content-Range", "bytes 16-1039/3000")],
        &data[16..1040],
    );
    let script = Script::new((0..8).map(|_| Answer::Bytes(wrong.clone())));
    let c = client(&script, |cfg| cfg.set_chunk_size(1024).expect("chunk"));
    let (got, sink) = download(&c);
    assert!(
        matches!(got, Err(Error::Protocol(ref m)) if m.contains("Content-Range starts at 16")),
        "{got:?}"
    );
    assert!(
        sink.data.is_empty(),
        "bytes of the wrong range were written"
    );
}
