//! Content-Disposition filenames: whatever the server sends, the result is
//! one safe path component.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wxmedia::range::{content_disposition_filename, safe_filename};

fn check(n: &str, input: &[u8]) {
    assert!(!n.is_empty(), "{input:?}");
    assert!(n != "." && n != "..", "{input:?}");
    assert!(
        !n.contains('/') && !n.contains('\\'),
        "{n:?} from {input:?}"
    );
    assert!(!n.chars().any(|c| c.is_control()), "{n:?} from {input:?}");
    assert_eq!(n.trim(), n, "{input:?}");
}

fuzz_target!(|data: &[u8]| {
    if let Some(n) = content_disposition_filename(data) {
        check(&n, data);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(n) = safe_filename(s) {
            check(&n, data);
        }
    }
});
