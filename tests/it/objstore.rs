//! `wxm_download_to_object` (issue 23) through the C ABI: the emulator as
//! WeChat, versitygw (a real S3-compatible server that checks signatures)
//! as the object store. Objects are compared by sha256 with the media;
//! "nothing left behind" is ListMultipartUploads answering none.

use crate::support::s3::{S3View, Versitygw, S3_ACCESS, S3_SECRET};
use crate::support::{self, add_media, cs, ranges, start, text, ClientOpts, Platform, TestClient};
use serde_json::json;
use std::time::{Duration, Instant};
use wxmedia::error::*;
use wxmedia::ffi::download::*;
use wxmedia::ffi::objstore::*;

const BUCKET: &str = "media";
const MIB: u64 = 1024 * 1024;

pub struct Store(pub *mut wxm_objstore);

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: from wxm_objstore_new, freed once.
        unsafe { wxm_objstore_free(self.0) }
    }
}

/// A store for `endpoint` with the test credentials (`secret` to vary it).
pub fn store(endpoint: &str, secret: &str) -> Store {
    // SAFETY: live handle, NUL-terminated strings.
    unsafe {
        let s = wxm_objstore_new();
        assert!(!s.is_null());
        assert_eq!(wxm_objstore_set_endpoint(s, cs(endpoint).as_ptr()), 0);
        assert_eq!(wxm_objstore_set_region(s, cs("us-east-1").as_ptr()), 0);
        assert_eq!(
            wxm_objstore_set_credentials(
                s,
                cs(S3_ACCESS).as_ptr(),
                cs(secret).as_ptr(),
                std::ptr::null()
            ),
            0
        );
        assert_eq!(wxm_objstore_set_part_size(s, 5 * MIB), 0);
        Store(s)
    }
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub rc: i32,
    pub errmsg: String,
    pub last_errmsg: String,
    pub size: u64,
    pub resumed: u64,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub elapsed: Duration,
}

/// One `wxm_download_to_object` run; `before` may set up the handle (a
/// cancel from another thread, say) and gets its address.
pub fn to_object_with(
    c: &TestClient,
    media_id: &str,
    s: &Store,
    bucket: &str,
    key: &str,
    before: impl FnOnce(usize),
) -> Outcome {
    let t0 = Instant::now();
    // SAFETY: live handles for the duration of each call.
    unsafe {
        let d = wxm_download_new(c.0, cs(media_id).as_ptr());
        assert!(!d.is_null());
        before(d as usize);
        let rc = wxm_download_to_object(d, s.0, cs(bucket).as_ptr(), cs(key).as_ptr());
        let o = Outcome {
            rc,
            last_errmsg: support::last_errmsg(),
            errmsg: text(wxm_download_errmsg(d)).unwrap_or_default(),
            size: wxm_download_size(d),
            resumed: wxm_download_resumed(d),
            content_type: text(wxm_download_content_type(d)),
            filename: text(wxm_download_filename(d)),
            elapsed: t0.elapsed(),
        };
        wxm_download_free(d);
        o
    }
}

pub fn to_object(c: &TestClient, media_id: &str, s: &Store, bucket: &str, key: &str) -> Outcome {
    to_object_with(c, media_id, s, bucket, key, |_| {})
}

/// versitygw with the test bucket.
pub fn gateway() -> (Versitygw, S3View) {
    let gw = Versitygw::start();
    let view = gw.view(BUCKET);
    view.create_bucket();
    (gw, view)
}

fn check_object(view: &S3View, key: &str, media: &[u8]) -> support::s3::Object {
    let o = view.object(key).expect("the object exists");
    assert_eq!(o.len, media.len() as u64, "{key}: length");
    assert_eq!(o.sha256, support::sha256_hex(media), "{key}: sha256");
    o
}

#[test]
fn one_mib_is_one_put_with_type_and_filename() {
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let (id, media) = add_media(
        &emu,
        json!({"size": MIB, "seed": 11, "filename": "报告 1.pdf", "content_type": "application/pdf"}),
    );
    let c = support::client(&emu, ClientOpts::default());
    let s = store(&gw.endpoint(), S3_SECRET);
    let o = to_object(&c, &id, &s, BUCKET, "in/one.pdf");
    assert_eq!(o.rc, 0, "{o:?}");
    assert_eq!(o.size, MIB);
    let obj = check_object(&view, "in/one.pdf", &media);
    assert_eq!(obj.content_type.as_deref(), Some("application/pdf"));
    let cd = obj.content_disposition.expect("content-disposition");
    assert!(
        cd.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%201.pdf"),
        "{cd}"
    );
    assert!(view.uploads().is_empty());
}

#[test]
fn fifty_mib_in_parallel_parts() {
    let emu = start(Platform::WeCom);
    let (gw, view) = gateway();
    let (id, media) = add_media(&emu, json!({"size": 50 * MIB + 123, "seed": 12}));
    let c = support::client(
        &emu,
        ClientOpts {
            chunk: 4 * MIB,
            parallelism: 4,
            ..ClientOpts::default()
        },
    );
    let s = store(&gw.endpoint(), S3_SECRET);
    let o = to_object(&c, &id, &s, BUCKET, "fifty");
    assert_eq!(o.rc, 0, "{o:?}");
    let obj = check_object(&view, "fifty", &media);
    assert_eq!(obj.media_id_meta.as_deref(), Some(id.as_str()));
    assert!(view.uploads().is_empty());
    // Every byte fetched once.
    let fetched: u64 = ranges(&emu, &id).iter().map(|(a, b)| b - a + 1).sum();
    assert_eq!(fetched, media.len() as u64);
}
