//! The boundary: NULL for every pointer, bad UTF-8, bad values, state
//! misuse, the token source shared by threads.

use crate::support::*;
use serde_json::json;
use std::ffi::c_char;
use std::ptr::{null, null_mut};
use wxmedia::error::*;
use wxmedia::ffi::download::*;
use wxmedia::ffi::upload::*;
use wxmedia::ffi::*;

const BAD_UTF8: &[u8] = b"\xff\xfe\0";

fn bad() -> *const c_char {
    BAD_UTF8.as_ptr() as *const c_char
}

#[test]
fn null_and_bad_arguments_answer_codes() {
    // SAFETY: every pointer is NULL, a live handle or a NUL-terminated buffer.
    unsafe {
        assert!(wxm_config_new(0).is_null());
        assert!(wxm_config_new(99).is_null());
        assert!(!text(wxm_last_errmsg()).unwrap_or_default().is_empty());
        assert_eq!(
            wxm_config_set_base_url(null_mut(), cs("http://x").as_ptr()),
            WXM_E_INVALID_ARG
        );
        let cfg = wxm_config_new(1);
        assert_eq!(wxm_config_set_base_url(cfg, null()), WXM_E_INVALID_ARG);
        assert_eq!(wxm_config_set_base_url(cfg, bad()), WXM_E_INVALID_ARG);
        assert_eq!(
            wxm_config_set_base_url(cfg, cs("ftp://x").as_ptr()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(wxm_config_set_access_token(cfg, null()), WXM_E_INVALID_ARG);
        assert_eq!(
            wxm_config_set_access_token(cfg, cs("").as_ptr()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(
            wxm_config_set_access_token(cfg, cs("has space").as_ptr()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(
            wxm_config_set_credentials(cfg, null(), cs("s").as_ptr()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(
            wxm_config_set_credentials(cfg, cs("i").as_ptr(), bad()),
            WXM_E_INVALID_ARG
        );
        for bytes in [0u64, 1, 15, 1000, 20 * 1024 * 1024 + 16, u64::MAX] {
            assert_eq!(
                wxm_config_set_chunk_size(cfg, bytes),
                WXM_E_INVALID_ARG,
                "{bytes}"
            );
        }
        assert_eq!(wxm_config_set_chunk_size(cfg, 20 * 1024 * 1024), 0);
        assert_eq!(wxm_config_set_chunk_size(null_mut(), 16), WXM_E_INVALID_ARG);
        assert_eq!(
            wxm_config_set_token_api(cfg, 2),
            WXM_E_INVALID_ARG,
            "WeCom has no classic token API"
        );
        assert_eq!(wxm_config_set_token_api(cfg, 7), WXM_E_INVALID_ARG);
        assert_eq!(wxm_config_set_parallelism(cfg, 0), WXM_E_INVALID_ARG);
        assert_eq!(wxm_config_set_parallelism(cfg, u32::MAX), WXM_E_INVALID_ARG);
        assert_eq!(wxm_config_set_timeouts(cfg, 0, 1), WXM_E_INVALID_ARG);
        assert_eq!(wxm_config_set_retries(cfg, 0, 1), WXM_E_INVALID_ARG);
        assert_eq!(wxm_config_set_limit(cfg, null(), 1), WXM_E_INVALID_ARG);
        assert_eq!(wxm_config_set_ca_file(cfg, null()), WXM_E_INVALID_ARG);
        assert_eq!(wxm_client_new(null(), null_mut()), WXM_E_INVALID_ARG);
        assert_eq!(wxm_client_new(cfg, null_mut()), WXM_E_INVALID_ARG);
        let mut c = null_mut();
        assert_eq!(
            wxm_config_set_ca_file(cfg, cs("/no/such/ca.pem").as_ptr()),
            0
        );
        assert_eq!(wxm_client_new(cfg, &mut c), WXM_E_INVALID_ARG);
        assert!(c.is_null(), "out untouched on failure");
        wxm_config_free(cfg);
        wxm_config_free(null_mut());

        let cfg = wxm_config_new(1);
        assert_eq!(wxm_client_new(cfg, &mut c), 0);
        wxm_config_free(cfg);
        assert_eq!(
            wxm_client_set_access_token(null(), cs("t").as_ptr()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(wxm_client_set_access_token(c, null()), WXM_E_INVALID_ARG);
        assert!(wxm_download_new(null(), cs("m").as_ptr()).is_null());
        assert!(wxm_download_new(c, null()).is_null());
        assert!(wxm_download_new(c, bad()).is_null());
        assert!(wxm_download_new(c, cs("").as_ptr()).is_null());
        let d = wxm_download_new(c, cs("m").as_ptr());
        assert_eq!(wxm_download_to_sink(d, None, null_mut()), WXM_E_INVALID_ARG);
        assert_eq!(
            wxm_download_to_sink(null_mut(), None, null_mut()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(wxm_download_to_path(d, null()), WXM_E_INVALID_ARG);
        assert_eq!(wxm_download_to_path(d, bad()), WXM_E_INVALID_ARG);
        assert_eq!(
            wxm_download_to_path(null_mut(), cs("/tmp/x").as_ptr()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(wxm_download_set_start(null_mut(), 1), WXM_E_INVALID_ARG);
        assert_eq!(
            wxm_download_set_progress(null_mut(), None, null_mut()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(wxm_download_set_start(d, 5), 0);
        assert_eq!(
            wxm_download_to_path(d, cs("/tmp/x").as_ptr()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(wxm_download_size(null()), 0);
        assert!(wxm_download_content_type(null()).is_null());
        assert!(wxm_download_filename(null()).is_null());
        assert!(wxm_download_video_url(null()).is_null());
        assert!(wxm_download_errmsg(null()).is_null());
        assert!(wxm_download_filename(d).is_null(), "nothing before a run");
        wxm_download_cancel(null());
        wxm_download_free(null_mut());
        wxm_download_free(d);

        assert!(wxm_upload_new(null(), cs("file").as_ptr()).is_null());
        assert!(wxm_upload_new(c, null()).is_null());
        assert!(wxm_upload_new(c, bad()).is_null());
        let u = wxm_upload_new(c, cs("file").as_ptr());
        assert_eq!(wxm_upload_set_path(u, null()), WXM_E_INVALID_ARG);
        assert_eq!(wxm_upload_set_path(u, bad()), WXM_E_INVALID_ARG);
        assert_eq!(
            wxm_upload_set_path(null_mut(), cs("/x").as_ptr()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(
            wxm_upload_set_reader(u, None, null_mut(), 10),
            WXM_E_INVALID_ARG
        );
        assert_eq!(wxm_upload_set_filename(u, null()), WXM_E_INVALID_ARG);
        assert_eq!(
            wxm_upload_set_progress(null_mut(), None, null_mut()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(wxm_upload_run(null_mut()), WXM_E_INVALID_ARG);
        assert!(wxm_upload_media_id(null()).is_null());
        assert!(wxm_upload_type(null()).is_null());
        assert_eq!(wxm_upload_created_at(null()), 0);
        assert!(wxm_upload_errmsg(null()).is_null());
        wxm_upload_cancel(null());
        wxm_upload_free(null_mut());
        wxm_upload_free(u);
        wxm_client_free(c);
        wxm_client_free(null_mut());
        assert!(!wxm_strerror(i32::MIN).is_null());
        assert!(!wxm_strerror(40007).is_null());
    }
}

#[test]
fn a_transfer_outlives_its_client_handle() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 10_000, "seed": 1}));
    let c = client(&emu, ClientOpts::default());
    // SAFETY: the download holds its own reference to the client.
    unsafe {
        let d = wxm_download_new(c.0, cs(&id).as_ptr());
        drop(c);
        let dir = tempdir("outlive");
        let target = dir.join("f");
        assert_eq!(
            wxm_download_to_path(d, cs(target.to_str().expect("utf-8")).as_ptr()),
            0
        );
        assert_eq!(std::fs::read(&target).expect("read"), want);
        assert_eq!(wxm_download_size(d), want.len() as u64);
        wxm_download_free(d);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn cancel_before_run_and_run_twice() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 1000, "seed": 2}));
    let c = client(&emu, ClientOpts::default());
    // SAFETY: live handles.
    unsafe {
        let d = wxm_download_new(c.0, cs(&id).as_ptr());
        wxm_download_cancel(d);
        unsafe extern "C" fn sink(_: *mut std::ffi::c_void, _: u64, _: *const u8, _: usize) -> i32 {
            0
        }
        assert_eq!(
            wxm_download_to_sink(d, Some(sink), null_mut()),
            WXM_E_CANCELLED
        );
        assert!(!text(wxm_download_errmsg(d)).unwrap_or_default().is_empty());
        wxm_download_free(d);
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        wxm_upload_cancel(u);
        assert_eq!(wxm_upload_set_path(u, cs("/etc/hostname").as_ptr()), 0);
        assert_eq!(wxm_upload_run(u), WXM_E_CANCELLED);
        wxm_upload_free(u);
    }
    // Running the same handle twice is allowed: each run is a full transfer.
    let got1 = download_sink(&c, &id, 0);
    let got2 = download_sink(&c, &id, 0);
    assert_eq!((got1.rc, got2.rc), (0, 0));
    assert_eq!(got2.data, want);
}

#[test]
fn token_refresh_is_single_flight_across_threads() {
    let emu = start(Platform::WeCom);
    let media: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| add_media(&emu, json!({"size": 40_000, "seed": 50 + i})))
        .collect();
    let c = client(&emu, ClientOpts::credentialed());
    // Warm up: one fetch.
    assert_eq!(download_sink(&c, &media[0].0, 0).rc, 0);
    admin(&emu, "POST", "/__admin/expire_token", json!({"all": true}));
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for (id, want) in &media {
            let (c, barrier) = (&c, &barrier);
            s.spawn(move || {
                barrier.wait();
                let got = download_sink(c, id, 0);
                assert_eq!(got.rc, 0, "{}", got.errmsg);
                assert!(&got.data == want);
            });
        }
    });
    assert_eq!(
        stats(&emu)["token_fetches"].as_u64(),
        Some(2),
        "one fetch per expiry"
    );
}

#[test]
fn host_rotated_token_is_used_at_once() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 100, "seed": 3}));
    let c = client(
        &emu,
        ClientOpts {
            token: Some("not-valid".into()),
            ..Default::default()
        },
    );
    let rc = download_sink(&c, &id, 0).rc;
    assert!([40001, 40014, 42001].contains(&rc), "{rc}");
    // SAFETY: live client, NUL-terminated token.
    unsafe { assert_eq!(wxm_client_set_access_token(c.0, cs(TOKEN).as_ptr()), 0) };
    assert_eq!(download_sink(&c, &id, 0).rc, 0);
}
