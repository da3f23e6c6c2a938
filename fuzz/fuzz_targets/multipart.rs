//! Upload filenames and multipart framing: any name a host passes gives a
//! header that cannot break out of its quotes or lines, and local
//! validation never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wxmedia::config::{Format, Platform};
use wxmedia::upload::{multipart_frame, prepare, upload_filename, Prepared};

const KINDS: [&str; 6] = ["image", "voice", "video", "file", "thumb", "x"];
const PLATFORMS: [Platform; 4] = [
    Platform::WeCom,
    Platform::Kf,
    Platform::Official,
    Platform::MiniProgram,
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let (ctl, rest) = data.split_at(10);
    let name = String::from_utf8_lossy(rest).into_owned();
    let head = &rest[..rest.len().min(16)];
    let format = Format::sniff(head);
    let f = upload_filename(&name, format);
    assert!(!f.is_empty());
    for bad in ['"', '\r', '\n', '/', '\\', '\0'] {
        assert!(!f.contains(bad), "{f:?} from {name:?}");
    }
    let p = Prepared {
        filename: f.clone(),
        content_type: "application/octet-stream",
        length: u64::from_le_bytes(ctl[..8].try_into().unwrap_or([0; 8])),
    };
    let (h, t) = multipart_frame("B0undary", &p);
    let h = String::from_utf8(h).expect("UTF-8 head");
    assert!(h.starts_with("--B0undary\r\n") && h.ends_with("\r\n\r\n"));
    assert_eq!(h.matches("\r\n\r\n").count(), 1, "{h:?}");
    assert_eq!(h.matches('"').count(), 4, "{h:?}");
    assert_eq!(t, b"\r\n--B0undary--\r\n");
    let platform = PLATFORMS[(ctl[8] as usize) % 4];
    let kind = KINDS[(ctl[9] as usize) % KINDS.len()];
    if let Ok(p) = prepare(
        platform.upload_rule(kind),
        kind,
        "fuzz",
        p.length,
        head,
        &name,
    ) {
        assert!(p.length > 5);
        assert!(!p.filename.contains('"'));
    }
});
