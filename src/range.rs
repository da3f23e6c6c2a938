//! Pure Range arithmetic and header parsing: no I/O, so it is unit-, property-
//! and fuzz-tested without a server.

/// Encrypted WeCom media can only be decrypted in 16-byte blocks, so every
/// chunk starts on, and (but for the last) is a length of, a multiple of 16.
pub const ALIGN: u64 = 16;
/// WeChat answers 830002 to a request for more than 20 MB at once.
pub const MAX_CHUNK: u64 = 20 * 1024 * 1024;

pub fn align_down(x: u64) -> u64 {
    x & !(ALIGN - 1)
}

/// The first request of a parallel download only needs to tell the size;
/// keep it short so the workers start early.
pub fn parallel_first_request(chunk: u64) -> u64 {
    chunk.min(1024 * 1024)
}

/// A chunk size is usable when it is a non-zero multiple of 16 no larger than 20 MiB.
pub fn valid_chunk_size(n: u64) -> bool {
    n > 0 && n % ALIGN == 0 && n <= MAX_CHUNK
}

/// The request that fetches what the sink needs next: it starts at the
/// aligned floor of `pos` (the head up to `pos` is skipped) and asks for at
/// most `chunk` bytes, never past `limit` (exclusive: the chunk's end or the
/// file's size, when known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub start: u64,
    /// Inclusive, as in the Range header.
    pub end: u64,
    /// Bytes at the head of the answer that the sink already has.
    pub skip: u64,
}

pub fn next_request(pos: u64, chunk: u64, limit: Option<u64>) -> Request {
    let start = align_down(pos);
    let mut end_excl = start.saturating_add(chunk);
    if let Some(limit) = limit {
        end_excl = end_excl.min(limit.max(start + 1));
    }
    Request {
        start,
        end: end_excl - 1,
        skip: pos - start,
    }
}

impl Request {
    pub fn header(&self) -> String {
        format!("bytes={}-{}", self.start, self.end)
    }
    #[allow(clippy::len_without_is_empty)] // never empty: end >= start
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// The chunks of a parallel download, handed out one at a time to the
/// workers. Full-size chunks first; toward the end each is a share of what
/// is left (a `2 × parallelism`-th), so the last ones are small and the
/// connections finish together instead of one carrying a long last chunk
/// alone. Computed as taken: a server controls the size, and a plan of a
/// 2^62-byte "media" must never be built in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkCursor {
    /// Where the next chunk starts (16-aligned, but for the first).
    next: u64,
    end: u64,
    /// The largest chunk: the configured one, or less so that every
    /// worker gets several chunks of a small media.
    most: u64,
    parallelism: u64,
    taken: usize,
}

impl ChunkCursor {
    /// No chunk is smaller than this (but the media's last): below it,
    /// requests would dominate.
    const FLOOR: u64 = 256 * 1024;

    /// How many chunks there can be at most: no more workers are needed.
    pub fn most_chunks(&self) -> usize {
        let smallest = Self::FLOOR.min(self.most).max(1);
        usize::try_from(self.end.saturating_sub(self.next).div_ceil(smallest)).unwrap_or(usize::MAX)
    }

    /// Chunks of `[from, end)`; `chunk` is a valid chunk size.
    pub fn new(from: u64, end: u64, chunk: u64, parallelism: u32) -> ChunkCursor {
        let parallelism = u64::from(parallelism.max(1));
        let share = end.saturating_sub(from).div_ceil(parallelism * 4);
        let most = share
            .div_ceil(ALIGN)
            .saturating_mul(ALIGN)
            .max(Self::FLOOR)
            .min(chunk.max(ALIGN));
        ChunkCursor {
            next: from,
            end,
            most,
            parallelism,
            taken: 0,
        }
    }

    /// The next chunk: `(its index, start, end)`, or None when all are taken.
    pub fn take(&mut self) -> Option<(usize, u64, u64)> {
        if self.next >= self.end {
            return None;
        }
        // A share of what is left, within [FLOOR, most].
        let share = (self.end - self.next).div_ceil(self.parallelism * 2);
        let size = share.clamp(Self::FLOOR.min(self.most), self.most);
        // Ends on a 16-byte boundary (encrypted media need whole blocks)
        // or at the media's end, leaving no sliver under 16 bytes behind.
        let mut stop = align_down(self.next.saturating_add(size));
        if stop >= self.end || self.end - stop < ALIGN {
            stop = self.end;
        }
        let chunk = (self.taken, self.next, stop);
        self.next = stop;
        self.taken += 1;
        Some(chunk)
    }
}

/// A parsed `Content-Range: bytes start-end/total` (total `*` → None).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
    pub total: Option<u64>,
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a 206's Content-Range. Also accepts the unsatisfied form
/// `bytes */total` as `Err(Some(total))` for a 416.
pub fn parse_content_range(value: &str) -> Result<ContentRange, Option<u64>> {
    let v = value.trim();
    let rest = v
        .strip_prefix("bytes")
        .map(|r| r.trim_start())
        .ok_or(None)?;
    let (range, total) = rest.split_once('/').ok_or(None)?;
    let total = total.trim();
    let total = if total == "*" {
        None
    } else {
        Some(parse_u64(total).ok_or(None)?)
    };
    let range = range.trim();
    if range == "*" {
        return Err(total);
    }
    let (a, b) = range.split_once('-').ok_or(None)?;
    let start = parse_u64(a.trim()).ok_or(None)?;
    let end = parse_u64(b.trim()).ok_or(None)?;
    if end < start {
        return Err(None);
    }
    if let Some(t) = total {
        if end >= t {
            return Err(None);
        }
    }
    Ok(ContentRange { start, end, total })
}

/// Checks a 206 against the request that produced it. `known_total` is the
/// size seen in earlier answers of the same transfer.
pub fn check_partial(
    asked: &Request,
    cr: &ContentRange,
    known_total: Option<u64>,
    content_length: Option<u64>,
) -> Result<(), String> {
    if cr.start != asked.start {
        return Err(format!(
            "Content-Range starts at {} but {} was asked",
            cr.start, asked.start
        ));
    }
    if cr.end > asked.end {
        return Err(format!(
            "Content-Range ends at {} beyond the asked end {}",
            cr.end, asked.end
        ));
    }
    let total = cr
        .total
        .ok_or_else(|| "Content-Range has no total size".to_string())?;
    if let Some(k) = known_total {
        if k != total {
            return Err(format!("total size changed from {k} to {total}"));
        }
    }
    // A short answer (end before the asked end) is legal: the next request
    // starts again at the aligned floor of what was received.
    let want = cr.end - cr.start + 1;
    if let Some(cl) = content_length {
        if cl != want {
            return Err(format!(
                "Content-Length {cl} does not match Content-Range length {want}"
            ));
        }
    }
    Ok(())
}

/// Percent-decodes `%XX` sequences; None on a malformed escape (which
/// the crate would pass through as text).
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let malformed = b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !b
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    (!malformed).then(|| percent_encoding::percent_decode(b).collect())
}

/// Bytes to text: UTF-8 when valid (WeChat sends raw UTF-8), else Latin-1.
fn bytes_to_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|&c| c as char).collect(),
    }
}

/// Splits header parameters on `;` outside quoted strings.
fn split_params(v: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut in_quote = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, &c) in v.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b';' if !in_quote => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |p| p + 1);
    &b[s..e.max(s)]
}

fn unquote(b: &[u8]) -> Vec<u8> {
    let b = trim(b);
    if b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"' {
        let inner = &b[1..b.len() - 1];
        let mut out = Vec::with_capacity(inner.len());
        let mut esc = false;
        for &c in inner {
            if esc {
                out.push(c);
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else {
                out.push(c);
            }
        }
        out
    } else {
        b.to_vec()
    }
}

/// The filename of a Content-Disposition value (raw header bytes, which may
/// hold raw UTF-8): `filename*` (RFC 6266/5987) first, then `filename`.
/// The result is made safe to join to a directory: only its last path
/// component, no control characters, never "." or "..".
pub fn content_disposition_filename(value: &[u8]) -> Option<String> {
    let mut star: Option<String> = None;
    let mut plain: Option<String> = None;
    for p in split_params(value).into_iter().skip(1) {
        let p = trim(p);
        let Some(eq) = p.iter().position(|&c| c == b'=') else {
            continue;
        };
        let name = trim(&p[..eq]).to_ascii_lowercase();
        let val = &p[eq + 1..];
        if name == b"filename*" {
            let v = String::from_utf8_lossy(&unquote(val)).into_owned();
            let mut parts = v.splitn(3, '\'');
            let (Some(charset), Some(_lang), Some(enc)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Some(bytes) = percent_decode(enc) else {
                continue;
            };
            let text = if charset.eq_ignore_ascii_case("utf-8") {
                match String::from_utf8(bytes) {
                    Ok(s) => s,
                    Err(_) => continue,
                }
            } else {
                bytes_to_text(&bytes)
            };
            star = Some(text);
        } else if name == b"filename" {
            plain = Some(bytes_to_text(&unquote(val)));
        }
    }
    star.or(plain).and_then(|n| safe_filename(&n))
}

/// The last path component, without control characters; None when nothing usable is left.
pub fn safe_filename(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim().to_string();
    if clean.is_empty() || clean == "." || clean == ".." {
        None
    } else {
        Some(clean)
    }
}

/// What a query-string value escapes: all but RFC 3986's unreserved.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query-string value (RFC 3986 unreserved kept).
pub fn query_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_aligned_and_bounded() {
        let r = next_request(0, 1024, None);
        assert_eq!((r.start, r.end, r.skip), (0, 1023, 0));
        let r = next_request(1000, 1024, None);
        assert_eq!((r.start, r.end, r.skip), (992, 2015, 8));
        let r = next_request(992, 1024, Some(1000));
        assert_eq!((r.start, r.end, r.skip), (992, 999, 0));
        assert_eq!(r.header(), "bytes=992-999");
        // Exhaustive small check: start aligned, length ≤ chunk, skip < 16,
        // and the length is a multiple of 16 unless the request ends at the limit.
        for pos in 0..200u64 {
            for chunk in [16u64, 32, 48, 160] {
                for limit in [None, Some(pos + 1), Some(pos + 37), Some(1000)] {
                    let r = next_request(pos, chunk, limit);
                    assert_eq!(r.start % 16, 0);
                    assert!(r.len() <= chunk);
                    assert!(r.skip < 16);
                    assert_eq!(r.start + r.skip, pos);
                    let ends_at_limit = limit.is_some_and(|l| r.end + 1 == l);
                    assert!(
                        r.len() % 16 == 0 || ends_at_limit,
                        "{pos} {chunk} {limit:?} {r:?}"
                    );
                }
            }
        }
    }

    fn chunks(from: u64, end: u64, chunk: u64, p: u32) -> Vec<(usize, u64, u64)> {
        let mut c = ChunkCursor::new(from, end, chunk, p);
        std::iter::from_fn(|| c.take()).collect()
    }

    #[test]
    fn chunks_cover_exactly_aligned_and_bounded() {
        for end in [0u64, 1, 15, 16, 17, 1000, 4097, 5 << 20, 100 << 20 | 5] {
            for chunk in [16u64, 64, 4096, 1 << 20, MAX_CHUNK] {
                for from in [0u64, 16, 33, 5000] {
                    for p in [1u32, 2, 4, 8] {
                        let all = chunks(from, end, chunk, p);
                        let mut at = from;
                        for (i, (idx, s, e)) in all.iter().enumerate() {
                            assert_eq!((*idx, *s), (i, at), "{from} {end} {chunk} {p}");
                            assert!(e > s && e - s <= chunk.max(16) + 15, "{s} {e}");
                            assert!(*e == end || e % 16 == 0, "{s} {e}");
                            at = *e;
                        }
                        assert_eq!(at, from.max(end).min(end.max(from)), "{from} {end}");
                        if from >= end {
                            assert!(all.is_empty());
                        }
                    }
                }
            }
        }
        assert_eq!(parallel_first_request(MAX_CHUNK), 1 << 20);
        assert_eq!(parallel_first_request(4096), 4096);
    }

    #[test]
    fn the_last_chunks_shrink_so_connections_finish_together() {
        // 512 MiB at 4 connections with 20 MiB chunks: 25.6 full chunks
        // would leave one connection alone with the last of them.
        let all = chunks(0, 512 << 20, MAX_CHUNK, 4);
        let sizes: Vec<u64> = all.iter().map(|(_, s, e)| e - s).collect();
        assert_eq!(sizes[0], MAX_CHUNK);
        assert!(sizes.windows(2).all(|w| w[1] <= w[0]), "{sizes:?}");
        let tail: u64 = sizes.iter().rev().take(4).sum();
        assert!(tail < 8 << 20, "the last four chunks hold {tail} bytes");
        // A small media still gives every worker several chunks.
        let all = chunks(0, 4 << 20, MAX_CHUNK, 4);
        assert!(all.len() >= 12, "{}", all.len());
        // Regression (hostile server, issue 8): a 206 claiming a total of
        // 2^62 bytes made a parallel download build a 2^46-entry plan; the
        // cursor is a few words, whatever the size.
        let mut c = ChunkCursor::new(65536, 1 << 62, 65536, 4);
        assert_eq!(c.take(), Some((0, 65536, 131072)));
        let mut c = ChunkCursor::new(u64::MAX - 3, u64::MAX, MAX_CHUNK, 4);
        assert_eq!(c.take(), Some((0, u64::MAX - 3, u64::MAX)));
        assert_eq!(c.take(), None);
    }

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 0-1023/2048"),
            Ok(ContentRange {
                start: 0,
                end: 1023,
                total: Some(2048)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-9/*").map(|c| c.total),
            Ok(None)
        );
        assert_eq!(parse_content_range("bytes */77"), Err(Some(77)));
        for bad in [
            "",
            "bytes",
            "bytes 9-5/100",
            "bytes 0-100/100",
            "bytes -5/10",
            "bytes 1-2",
            "items 0-1/2",
            "bytes 0-1/x",
            "bytes 0-99999999999999999999999/1",
        ] {
            assert!(parse_content_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn partial_checks() {
        let asked = next_request(0, 1024, None);
        let ok = ContentRange {
            start: 0,
            end: 1023,
            total: Some(5000),
        };
        assert!(check_partial(&asked, &ok, None, Some(1024)).is_ok());
        assert!(check_partial(&asked, &ok, Some(4999), Some(1024)).is_err());
        assert!(check_partial(&asked, &ok, None, Some(1000)).is_err());
        let shifted = ContentRange { start: 16, ..ok };
        assert!(check_partial(&asked, &shifted, None, None).is_err());
        let longer = ContentRange { end: 2047, ..ok };
        assert!(check_partial(&asked, &longer, None, None).is_err());
        let no_total = ContentRange { total: None, ..ok };
        assert!(check_partial(&asked, &no_total, None, None).is_err());
    }

    #[test]
    fn disposition_prefers_filename_star() {
        let v =
            "attachment; filename*=utf-8''GMS-%E8%81%8A%E5%A4%A9.xlsx; filename=\"GMS-聊天.xlsx\"";
        assert_eq!(
            content_disposition_filename(v.as_bytes()).as_deref(),
            Some("GMS-聊天.xlsx")
        );
        // Raw UTF-8 in the plain parameter alone.
        let v = "attachment; filename=\"语音.amr\"";
        assert_eq!(
            content_disposition_filename(v.as_bytes()).as_deref(),
            Some("语音.amr")
        );
        let v = b"attachment; filename=MEDIA_ID.jpg";
        assert_eq!(
            content_disposition_filename(v).as_deref(),
            Some("MEDIA_ID.jpg")
        );
        let v = b"attachment; filename=\"a;b\\\"c.txt\"";
        assert_eq!(
            content_disposition_filename(v).as_deref(),
            Some("a;b\"c.txt")
        );
        // Latin-1 bytes that are not UTF-8.
        let v = b"attachment; filename=\"caf\xe9.txt\"";
        assert_eq!(content_disposition_filename(v).as_deref(), Some("café.txt"));
    }

    #[test]
    fn disposition_is_safe() {
        for (v, want) in [
            ("attachment; filename=\"../../etc/passwd\"", Some("passwd")),
            ("attachment; filename=\"/abs/x.bin\"", Some("x.bin")),
            ("attachment; filename=\"..\"", None),
            ("attachment; filename*=utf-8''..%2F..%2Fx", Some("x")),
            ("attachment; filename*=utf-8''a%00b", Some("ab")),
            (
                "attachment; filename*=utf-8''%ZZ; filename=\"ok\"",
                Some("ok"),
            ),
            ("attachment", None),
            ("", None),
        ] {
            assert_eq!(
                content_disposition_filename(v.as_bytes()).as_deref(),
                want,
                "{v}"
            );
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(query_encode("3*1*G6n-_.~"), "3%2A1%2AG6n-_.~");
    }
}
