//! Async upload by URL and uploadimg through the C ABI against the emulator.

use crate::support::*;
use serde_json::json;
use std::ffi::c_char;
use wxmedia::error::*;
use wxmedia::ffi::upload::*;
use wxmedia::ffi::url_upload::*;

struct Job(*mut wxm_url_upload);

impl Drop for Job {
    fn drop(&mut self) {
        // SAFETY: created by wxm_url_upload_new, freed once.
        unsafe { wxm_url_upload_free(self.0) }
    }
}

fn job(c: &TestClient, kind: &str, url: &str, filename: &str) -> Job {
    // SAFETY: live client and NUL-terminated strings.
    let j = unsafe {
        wxm_url_upload_new(
            c.0,
            cs(kind).as_ptr(),
            cs(url).as_ptr(),
            cs(filename).as_ptr(),
        )
    };
    assert!(!j.is_null());
    Job(j)
}

fn s(p: *const c_char) -> Option<String> {
    text(p)
}

/// A media served with Range by the emulator, and a local copy of it.
fn source(emu: &Emulator, size: u64, seed: u64) -> (String, Vec<u8>, std::path::PathBuf) {
    let (id, data) = add_media(emu, json!({"size": size, "seed": seed}));
    let dir = tempdir("urlsrc");
    let local = dir.join("local.mp4");
    std::fs::write(&local, &data).expect("write");
    (format!("{}/__video/{id}", emu.base_url()), data, local)
}

#[test]
fn upload_by_url_end_to_end_with_md5_from_a_local_copy() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let (url, data, local) = source(&emu, 9 * 1024 * 1024 + 3, 1);
    let j = job(&c, "video", &url, "宣传片.mp4");
    // SAFETY: live handle and strings.
    unsafe {
        assert_eq!(wxm_url_upload_status(j.0), WXM_JOB_NONE);
        assert_eq!(
            wxm_url_upload_set_md5_from_path(j.0, cs(local.to_str().expect("utf-8")).as_ptr()),
            0
        );
        let rc = wxm_url_upload_run(j.0, 30_000);
        assert_eq!(rc, 0, "{:?}", s(wxm_url_upload_errmsg(j.0)));
        assert_eq!(wxm_url_upload_status(j.0), WXM_JOB_DONE);
        assert!(s(wxm_url_upload_jobid(j.0)).is_some());
        assert!(wxm_url_upload_created_at(j.0) > 1_000_000_000);
        let media_id = s(wxm_url_upload_media_id(j.0)).expect("media_id");
        let got = download_sink(&c, &media_id, 0);
        assert_eq!(got.rc, 0, "{}", got.errmsg);
        assert!(got.data == data);
        assert_eq!(got.filename.as_deref(), Some("宣传片.mp4"));
    }
    let st = stats(&emu);
    assert!(
        st["requests"]["media/get_upload_by_url_result"]
            .as_u64()
            .unwrap_or(0)
            >= 2,
        "polled: {st}"
    );
}

#[test]
fn job_failures_surface_their_errcodes() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let (url, _, local) = source(&emu, 100_000, 2);
    // MD5 mismatch.
    let j = job(&c, "file", &url, "a.bin");
    // SAFETY: live handle and strings.
    unsafe {
        assert_eq!(
            wxm_url_upload_set_md5(j.0, cs("0123456789abcdef0123456789ABCDEF").as_ptr()),
            0
        );
        assert_eq!(wxm_url_upload_run(j.0, 30_000), 301019);
        assert_eq!(wxm_url_upload_status(j.0), WXM_JOB_FAILED);
        assert!(!s(wxm_url_upload_errmsg(j.0))
            .unwrap_or_default()
            .contains(TOKEN));
    }
    // A URL whose server ignores Range.
    fault(
        &emu,
        json!({"kind": "ignore_range", "endpoint": "video", "count": 10}),
    );
    let j = job(&c, "file", &url, "a.bin");
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            wxm_url_upload_set_md5_from_path(j.0, cs(local.to_str().expect("utf-8")).as_ptr()),
            0
        );
        assert_eq!(wxm_url_upload_run(j.0, 30_000), 830001);
    }
    reset(&emu);
    // A URL nobody serves.
    let dead = format!("http://127.0.0.1:{}/x.mp4", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    });
    let j = job(&c, "file", &dead, "a.bin");
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            wxm_url_upload_set_md5(j.0, cs("0123456789abcdef0123456789abcdef").as_ptr()),
            0
        );
        assert_eq!(wxm_url_upload_run(j.0, 30_000), 830003);
    }
}

#[test]
fn local_checks_send_nothing() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let md5 = "0123456789abcdef0123456789abcdef";
    for (kind, url, name, code) in [
        ("image", "http://127.0.0.1:1/a", "a.jpg", 40004),
        ("file", "ftp://127.0.0.1/a", "a.bin", 40058),
        ("file", "http://127.0.0.1:1/a", "", 40058),
    ] {
        let j = job(&c, kind, url, name);
        // SAFETY: live handle and strings.
        unsafe {
            assert_eq!(wxm_url_upload_set_md5(j.0, cs(md5).as_ptr()), 0);
            assert_eq!(wxm_url_upload_submit(j.0), code, "{kind} {url} {name:?}");
        }
    }
    // No MD5 given.
    let j = job(&c, "file", "http://127.0.0.1:1/a", "a.bin");
    // SAFETY: live handle.
    unsafe {
        assert_eq!(wxm_url_upload_submit(j.0), 40058);
        assert_eq!(
            wxm_url_upload_set_md5(j.0, cs("xyz").as_ptr()),
            WXM_E_INVALID_ARG
        );
        assert_eq!(
            wxm_url_upload_wait(j.0, 10),
            WXM_E_STATE,
            "nothing submitted"
        );
    }
    // A local copy outside 5 bytes..200 MB.
    let dir = tempdir("tiny");
    std::fs::write(dir.join("t"), b"12345").expect("write");
    // SAFETY: live handle.
    unsafe {
        assert_eq!(
            wxm_url_upload_set_md5_from_path(
                j.0,
                cs(dir.join("t").to_str().expect("utf-8")).as_ptr()
            ),
            45001
        );
    }
    assert_eq!(
        stats(&emu)["requests"]["media/upload_by_url"].as_u64(),
        Some(0)
    );
    // Not on the Official Account.
    let emu_oa = start(Platform::Official);
    let oa = client(
        &emu_oa,
        ClientOpts {
            platform: 3,
            ..Default::default()
        },
    );
    let j = job(&oa, "file", "http://127.0.0.1:1/a", "a.bin");
    // SAFETY: live handle.
    unsafe {
        assert_eq!(wxm_url_upload_set_md5(j.0, cs(md5).as_ptr()), 0);
        assert_eq!(wxm_url_upload_submit(j.0), 48001);
    }
}

#[test]
fn wait_times_out_then_resumes_and_a_jobid_can_be_adopted() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let (url, data, local) = source(&emu, 50_000, 3);
    let j = job(&c, "file", &url, "x.bin");
    // SAFETY: live handles and strings.
    unsafe {
        assert_eq!(
            wxm_url_upload_set_md5_from_path(j.0, cs(local.to_str().expect("utf-8")).as_ptr()),
            0
        );
        assert_eq!(wxm_url_upload_submit(j.0), 0);
        let jobid = s(wxm_url_upload_jobid(j.0)).expect("jobid");
        // The emulator takes at least 300 ms: a 1 ms wait times out.
        assert_eq!(wxm_url_upload_wait(j.0, 1), WXM_E_TIMEOUT);
        assert_eq!(wxm_url_upload_status(j.0), WXM_JOB_PROCESSING);
        // Another handle (another process, say) waits on the same job.
        let other = job(&c, "file", "http://unused", "unused");
        assert_eq!(wxm_url_upload_set_jobid(other.0, cs(&jobid).as_ptr()), 0);
        assert_eq!(wxm_url_upload_wait(other.0, 30_000), 0);
        let id = s(wxm_url_upload_media_id(other.0)).expect("media_id");
        assert_eq!(download_sink(&c, &id, 0).data, data);
        assert_eq!(wxm_url_upload_wait(j.0, 30_000), 0);
        // An unknown jobid is WeChat's 40058.
        let bad = job(&c, "file", "http://unused", "unused");
        assert_eq!(
            wxm_url_upload_set_jobid(bad.0, cs("no-such-job").as_ptr()),
            0
        );
        assert_eq!(wxm_url_upload_wait(bad.0, 5_000), 40058);
        assert_eq!(
            wxm_url_upload_status(bad.0),
            WXM_JOB_PROCESSING,
            "no job result was learnt"
        );
    }
}

#[test]
fn uploadimg_answers_a_permanent_url() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let data = media_bytes(JPEG_HEAD, 300_000, 4);
    let up = upload_reader(
        &c,
        "uploadimg",
        &data,
        data.len() as u64,
        Some("banner.jpg"),
        None,
    );
    assert_eq!(up.rc, 0, "{}", up.errmsg);
    assert!(up.media_id.is_none());
    // SAFETY: the getter is read through a fresh handle run below.
    let url = unsafe {
        let u = wxm_upload_new(c.0, cs("uploadimg").as_ptr());
        let mut st_data = data.clone();
        let dir = tempdir("img");
        let p = dir.join("b.png");
        st_data.splice(..PNG_HEAD.len(), PNG_HEAD.iter().copied());
        std::fs::write(&p, &st_data).expect("write");
        assert_eq!(
            wxm_upload_set_path(u, cs(p.to_str().expect("utf-8")).as_ptr()),
            0
        );
        assert_eq!(wxm_upload_run(u), 0);
        let url = text(wxm_upload_url(u)).expect("url");
        wxm_upload_free(u);
        (url, st_data)
    };
    let mut resp = ureq::get(&url.0).call().expect("image served");
    let body = resp.body_mut().read_to_vec().expect("body");
    assert_eq!(body, url.1);
    // Over 2 MB, or not an image: rejected locally.
    let big = media_bytes(JPEG_HEAD, 2 * 1024 * 1024 + 1, 5);
    assert_eq!(
        upload_reader(&c, "uploadimg", &big, big.len() as u64, None, None).rc,
        40009
    );
    let gif = media_bytes(b"GIF89a", 1000, 5);
    assert_eq!(
        upload_reader(&c, "uploadimg", &gif, 1000, None, None).rc,
        40005
    );
    assert_eq!(stats(&emu)["requests"]["media/uploadimg"].as_u64(), Some(2));
}

/// What the heartbeat of an upload by URL saw.
struct Beats {
    thread: std::thread::ThreadId,
    calls: std::sync::atomic::AtomicUsize,
    /// Calls made elsewhere than on the calling thread, or with figures.
    wrong: std::sync::atomic::AtomicUsize,
    /// The call that returns non-zero (0: none).
    stop_at: usize,
}

extern "C" fn beat(user_data: *mut std::ffi::c_void, done: u64, total: u64) -> i32 {
    use std::sync::atomic::Ordering;
    // SAFETY: user_data is the test's live Beats.
    let b = unsafe { &*(user_data as *const Beats) };
    let n = b.calls.fetch_add(1, Ordering::SeqCst) + 1;
    if std::thread::current().id() != b.thread || done != 0 || total != 0 {
        b.wrong.fetch_add(1, Ordering::SeqCst);
    }
    i32::from(n == b.stop_at)
}

#[test]
fn the_heartbeat_runs_during_a_wait_and_can_stop_it() {
    use std::sync::atomic::Ordering;
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let (url, data, local) = source(&emu, 40_000, 8);
    let md5_path = cs(local.to_str().expect("utf-8"));
    let beats = |stop_at| Beats {
        thread: std::thread::current().id(),
        calls: 0.into(),
        wrong: 0.into(),
        stop_at,
    };
    // SAFETY: live handles; each Beats outlives the calls that use it.
    unsafe {
        // The emulator takes at least 300 ms: the heartbeat comes every ~100 ms.
        let seen = beats(0);
        let j = job(&c, "file", &url, "a.bin");
        assert_eq!(wxm_url_upload_set_md5_from_path(j.0, md5_path.as_ptr()), 0);
        let ud = &seen as *const Beats as *mut std::ffi::c_void;
        assert_eq!(wxm_url_upload_set_progress(j.0, Some(beat), ud), 0);
        assert_eq!(wxm_url_upload_run(j.0, 30_000), 0);
        let calls = seen.calls.load(Ordering::SeqCst);
        assert!(calls >= 2, "{calls} heartbeats in a wait of 300 ms or more");
        assert_eq!(seen.wrong.load(Ordering::SeqCst), 0, "figures or thread");

        // A non-zero return stops the wait; the job goes on and can be waited for.
        let stopper = beats(1);
        let j = job(&c, "file", &url, "b.bin");
        assert_eq!(wxm_url_upload_set_md5_from_path(j.0, md5_path.as_ptr()), 0);
        let ud = &stopper as *const Beats as *mut std::ffi::c_void;
        assert_eq!(wxm_url_upload_set_progress(j.0, Some(beat), ud), 0);
        assert_eq!(wxm_url_upload_run(j.0, 30_000), WXM_E_ABORTED);
        assert!(
            s(wxm_url_upload_errmsg(j.0)).is_some_and(|m| m.contains("progress callback")),
            "{:?}",
            s(wxm_url_upload_errmsg(j.0))
        );
        assert_eq!(stopper.calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            wxm_url_upload_set_progress(j.0, None, std::ptr::null_mut()),
            0
        );
        assert_eq!(
            wxm_url_upload_wait(j.0, 30_000),
            0,
            "{:?}",
            s(wxm_url_upload_errmsg(j.0))
        );
        let id = s(wxm_url_upload_media_id(j.0)).expect("media_id");
        assert_eq!(download_sink(&c, &id, 0).data, data);
        assert_eq!(
            stopper.calls.load(Ordering::SeqCst),
            1,
            "a cleared heartbeat is not called"
        );
        assert_eq!(
            wxm_url_upload_set_progress(std::ptr::null_mut(), Some(beat), ud),
            WXM_E_INVALID_ARG
        );
    }
}

#[test]
fn a_submission_whose_answer_is_lost_is_not_sent_again() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let (url, _, local) = source(&emu, 64 * 1024, 11);
    let jobs = |emu: &Emulator| -> u64 {
        let j = &stats(emu)["jobs"];
        ["processing", "done", "failed"]
            .iter()
            .map(|k| j[*k].as_u64().unwrap_or(0))
            .sum()
    };
    // WeChat reads the submission, creates the job, and the answer is lost.
    fault(
        &emu,
        json!({"kind": "drop_after_body", "endpoint": "media/upload_by_url"}),
    );
    let j = job(&c, "file", &url, "a.bin");
    // SAFETY: live handle and strings.
    let (rc, msg) = unsafe {
        assert_eq!(
            wxm_url_upload_set_md5_from_path(j.0, cs(local.to_str().expect("utf-8")).as_ptr()),
            0
        );
        let rc = wxm_url_upload_run(j.0, 30_000);
        (rc, s(wxm_url_upload_errmsg(j.0)).unwrap_or_default())
    };
    assert_eq!(rc, WXM_E_OUTCOME_UNKNOWN, "{msg}");
    assert!(msg.contains("not sent again"), "{msg}");
    assert!(!msg.contains(TOKEN), "{msg}");
    let st = stats(&emu);
    assert_eq!(
        st["requests"]["media/upload_by_url"].as_u64(),
        Some(1),
        "sent twice: {st}"
    );
    assert_eq!(jobs(&emu), 1, "one job exists, as WeChat would have it");

    // An answer that proves nothing was created (errcode -1, busy) is retried.
    reset(&emu);
    fault(
        &emu,
        json!({"kind": "errcode", "errcode": -1, "endpoint": "media/upload_by_url"}),
    );
    let j = job(&c, "file", &url, "b.bin");
    // SAFETY: live handle and strings.
    unsafe {
        assert_eq!(
            wxm_url_upload_set_md5_from_path(j.0, cs(local.to_str().expect("utf-8")).as_ptr()),
            0
        );
        let rc = wxm_url_upload_run(j.0, 30_000);
        assert_eq!(rc, 0, "{:?}", s(wxm_url_upload_errmsg(j.0)));
    }
    assert_eq!(
        stats(&emu)["requests"]["media/upload_by_url"].as_u64(),
        Some(2)
    );

    // Nothing left this host (no server at that port): tried again, and
    // the failure is the network's, not an unknown outcome.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let c = new_client(&ClientOpts {
        base_url: format!("http://127.0.0.1:{port}"),
        ..Default::default()
    });
    let j = job(&c, "file", &url, "c.bin");
    // SAFETY: live handle and strings.
    unsafe {
        assert_eq!(
            wxm_url_upload_set_md5_from_path(j.0, cs(local.to_str().expect("utf-8")).as_ptr()),
            0
        );
        let rc = wxm_url_upload_run(j.0, 30_000);
        let msg = s(wxm_url_upload_errmsg(j.0)).unwrap_or_default();
        assert_eq!(rc, WXM_E_NETWORK, "{msg}");
        // The message names what could not be reached.
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    }
}
