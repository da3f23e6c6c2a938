//! Content-Range parsing and the checks of a 206 against its request, plus
//! the chunk arithmetic a server's numbers feed into.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wxmedia::range::{
    check_partial, next_request, parse_content_range, valid_chunk_size, ChunkCursor, MAX_CHUNK,
};

fn u64_at(d: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, x) in b.iter_mut().enumerate() {
        *x = d.get(i + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_content_range(&text) {
        Ok(cr) => {
            assert!(cr.start <= cr.end, "{text:?}");
            if let Some(t) = cr.total {
                assert!(cr.end < t, "{text:?}");
            }
            let pos = u64_at(data, 0);
            let chunk = (u64_at(data, 8) % MAX_CHUNK / 16 + 1) * 16;
            assert!(valid_chunk_size(chunk));
            let limit = cr.total;
            let req = next_request(pos, chunk, limit);
            assert_eq!(req.start % 16, 0);
            assert!(req.end >= req.start && req.len() <= chunk);
            assert_eq!(req.start + req.skip, pos);
            if check_partial(&req, &cr, None, Some(cr.end - cr.start + 1)).is_ok() {
                assert_eq!(cr.start, req.start);
                assert!(cr.end <= req.end);
            }
            if let Some(t) = cr.total {
                // The first chunks of a server-sized plan: aligned, bounded,
                // contiguous (a few only: the total may be 2^63).
                let mut cursor = ChunkCursor::new(pos, t, chunk, 4);
                let mut at = pos;
                for _ in 0..4 {
                    let Some((_, s, e)) = cursor.take() else {
                        assert!(at >= t);
                        break;
                    };
                    assert_eq!(s, at);
                    assert!(e > s && e - s <= chunk.max(16) && (e == t || e % 16 == 0));
                    at = e;
                }
            }
        }
        Err(Some(total)) => {
            let _ = total;
        }
        Err(None) => {}
    }
});
