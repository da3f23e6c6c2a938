//! Content-Range parsing and the checks of a 206 against its request, plus
//! the chunk arithmetic a server's numbers feed into.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wxmedia::range::{
    align_down, check_partial, next_request, parse_content_range, valid_chunk_size, ChunkPlan,
    MAX_CHUNK,
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
                let plan = ChunkPlan::new(pos, t, chunk);
                if !plan.is_empty() {
                    let (s, e) = plan.get(0);
                    assert_eq!(s, align_down(pos));
                    assert!(e > s && e - s <= chunk);
                    let (s, e) = plan.get(plan.len() - 1);
                    assert!(e == t && s < e);
                }
            }
        }
        Err(Some(total)) => {
            let _ = total;
        }
        Err(None) => {}
    }
});
