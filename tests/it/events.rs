//! Events and counters (issue 21) through the C ABI: transfers meet
//! scripted emulator faults, and the events a handler records must tell
//! exactly what was injected (every retry with its reason and backoff,
//! every token refresh, every resume and fallback), pair every request's
//! start with its end, and agree with the transfer's counters.

use crate::support::*;
use serde_json::json;
use std::ffi::c_void;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use wxmedia::error::*;
use wxmedia::ffi::download::*;
use wxmedia::ffi::event::*;
use wxmedia::ffi::upload::*;
use wxmedia::ffi::url_upload::*;
use wxmedia::ffi::*;

const KIB: u64 = 1024;

/// What one run through the C ABI gave, read before its handle is freed.
#[derive(Debug)]
struct Run {
    rc: i32,
    errmsg: String,
    counted: Counted,
    data: Vec<u8>,
    media_id: Option<String>,
}

unsafe extern "C" fn keep(ud: *mut c_void, _offset: u64, data: *const u8, len: usize) -> i32 {
    // SAFETY: ud is the Vec of `download`; data/len are valid for the call.
    unsafe {
        let out = &mut *(ud as *mut Vec<u8>);
        if len > 0 {
            out.extend_from_slice(std::slice::from_raw_parts(data, len));
        }
    }
    0
}

/// Downloads `id` to a sink, or to `target`.
fn download(c: &TestClient, id: &str, target: Option<&Path>) -> Run {
    // SAFETY: live handles and buffers for each call; the download is freed once.
    unsafe {
        let d = wxm_download_new(c.0, cs(id).as_ptr());
        assert!(!d.is_null());
        let mut data = Vec::new();
        let rc = match target {
            None => wxm_download_to_sink(d, Some(keep), &mut data as *mut _ as *mut c_void),
            Some(t) => wxm_download_to_path(d, cs(t.to_str().expect("utf-8")).as_ptr()),
        };
        let mut out = empty_counters();
        assert_eq!(wxm_download_counters(d, &mut out), 0);
        let run = Run {
            rc,
            errmsg: text(wxm_download_errmsg(d)).unwrap_or_default(),
            counted: out.into(),
            data: match target {
                None => data,
                Some(t) => std::fs::read(t).unwrap_or_default(),
            },
            media_id: None,
        };
        wxm_download_free(d);
        run
    }
}

fn upload(c: &TestClient, path: &Path) -> Run {
    // SAFETY: live handles for each call; the upload is freed once.
    unsafe {
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        assert!(!u.is_null());
        assert_eq!(
            wxm_upload_set_path(u, cs(path.to_str().expect("utf-8")).as_ptr()),
            0
        );
        let rc = wxm_upload_run(u);
        let mut out = empty_counters();
        assert_eq!(wxm_upload_counters(u, &mut out), 0);
        let run = Run {
            rc,
            errmsg: text(wxm_upload_errmsg(u)).unwrap_or_default(),
            counted: out.into(),
            data: Vec::new(),
            media_id: text(wxm_upload_media_id(u)),
        };
        wxm_upload_free(u);
        run
    }
}

fn url_upload(c: &TestClient, url: &str, local: &Path) -> Run {
    // SAFETY: live handles and strings for each call; the job is freed once.
    unsafe {
        let u = wxm_url_upload_new(
            c.0,
            cs("file").as_ptr(),
            cs(url).as_ptr(),
            cs("ev.bin").as_ptr(),
        );
        assert!(!u.is_null());
        assert_eq!(
            wxm_url_upload_set_md5_from_path(u, cs(local.to_str().expect("utf-8")).as_ptr()),
            0
        );
        let rc = wxm_url_upload_run(u, 30_000);
        let mut out = empty_counters();
        assert_eq!(wxm_url_upload_counters(u, &mut out), 0);
        let run = Run {
            rc,
            errmsg: text(wxm_url_upload_errmsg(u)).unwrap_or_default(),
            counted: out.into(),
            data: Vec::new(),
            media_id: text(wxm_url_upload_media_id(u)),
        };
        wxm_url_upload_free(u);
        run
    }
}

fn of_kind(evs: &[Ev], kind: i32) -> Vec<Ev> {
    evs.iter().filter(|e| e.kind == kind).cloned().collect()
}

fn kinds(evs: &[Ev]) -> Vec<i32> {
    evs.iter().map(|e| e.kind).collect()
}

/// What holds of every transfer's events: they all carry its id; it
/// starts first and finishes last with its outcome, time and bytes; every
/// request that started finished (on its thread, before that thread's
/// next request), with the attempt number it started with; every retry
/// has a reason and a backoff, and the next request of its thread is the
/// attempt it announced; and the counters say what the events say.
fn check_transfer(log: &EventLog, run: &Run, rc: i32) -> Vec<Ev> {
    log.assert_ok();
    assert_eq!(run.rc, rc, "{}", run.errmsg);
    let c = run.counted;
    assert_ne!(c.transfer_id, 0);
    // Everything these tests do happens inside a transfer.
    let orphans: Vec<Ev> = log
        .events()
        .into_iter()
        .filter(|e| e.transfer_id == 0)
        .collect();
    assert!(
        orphans.is_empty(),
        "events outside a transfer: {orphans:#?}"
    );
    let evs = log.of(c.transfer_id);
    assert!(evs.len() >= 2, "{evs:#?}");
    assert_eq!(evs[0].kind, WXM_EVENT_TRANSFER_STARTED, "{evs:#?}");
    assert_eq!(evs[0].level, WXM_LEVEL_INFO);
    let last = evs.last().expect("events");
    assert_eq!(last.kind, WXM_EVENT_TRANSFER_FINISHED, "{evs:#?}");
    assert_eq!(last.errcode, rc, "{last:?}");
    let want_level = if rc == 0 {
        WXM_LEVEL_INFO
    } else {
        WXM_LEVEL_WARNING
    };
    assert_eq!(last.level, want_level, "{last:?}");
    assert_eq!(last.duration_us, c.elapsed_us);
    assert!(c.elapsed_us > 0);
    assert_eq!(last.bytes, c.bytes_received + c.bytes_sent);
    assert_eq!(last.resume_offset, c.resumed_from);
    assert_eq!(of_kind(&evs, WXM_EVENT_TRANSFER_STARTED).len(), 1);
    assert_eq!(of_kind(&evs, WXM_EVENT_TRANSFER_FINISHED).len(), 1);
    for w in evs.windows(2) {
        assert!(w[0].time_ns <= w[1].time_ns);
    }

    // Per thread: STARTED, FINISHED, [RETRY], STARTED, ...
    let mut threads: Vec<&Option<String>> = evs.iter().map(|e| &e.thread).collect();
    threads.sort();
    threads.dedup();
    for t in threads {
        let mut open: Option<&Ev> = None;
        let mut last_failed: Option<&Ev> = None;
        let mut announced: Option<u32> = None;
        for e in evs.iter().filter(|e| &e.thread == t) {
            match e.kind {
                WXM_EVENT_REQUEST_STARTED => {
                    assert!(open.is_none(), "two requests at once on {t:?}: {e:?}");
                    assert!(e.attempt >= 1, "{e:?}");
                    if let Some(a) = announced.take() {
                        assert_eq!(e.attempt, a, "the retry announced attempt {a}: {e:?}");
                    }
                    assert!(!e.endpoint.is_empty() && !e.endpoint.contains('?'), "{e:?}");
                    open = Some(e);
                }
                WXM_EVENT_REQUEST_FINISHED => {
                    let s = open
                        .take()
                        .unwrap_or_else(|| panic!("finished, not started: {e:?}"));
                    assert_eq!(
                        (&s.endpoint, s.range_start, s.range_end, s.attempt),
                        (&e.endpoint, e.range_start, e.range_end, e.attempt),
                        "{s:?} / {e:?}"
                    );
                    assert_eq!(e.errcode == 0, e.message.contains(" us"), "{e:?}");
                    last_failed = (e.errcode != 0).then_some(e);
                }
                WXM_EVENT_RETRY_SCHEDULED => {
                    assert!(open.is_none(), "{e:?}");
                    assert_eq!(e.level, WXM_LEVEL_WARNING);
                    assert!(e.attempt >= 2, "{e:?}");
                    assert_ne!(e.retry_reason, 0, "{e:?}");
                    assert!(e.backoff_ms > 0, "{e:?}");
                    // The retry of the request that just failed, named alike.
                    let failed = last_failed.take().unwrap_or_else(|| panic!("{e:?}"));
                    assert_eq!(
                        (&e.endpoint, e.retry_reason),
                        (&failed.endpoint, failed.errcode),
                        "{failed:?} / {e:?}"
                    );
                    announced = Some(e.attempt);
                }
                _ => {}
            }
        }
        assert!(open.is_none(), "a request never finished: {open:?}");
    }

    let started = of_kind(&evs, WXM_EVENT_REQUEST_STARTED);
    let finished = of_kind(&evs, WXM_EVENT_REQUEST_FINISHED);
    assert_eq!(started.len(), finished.len());
    assert_eq!(c.requests, started.len() as u64, "{c:?}");
    assert_eq!(
        c.retries,
        of_kind(&evs, WXM_EVENT_RETRY_SCHEDULED).len() as u64
    );
    assert_eq!(
        c.token_refreshes,
        of_kind(&evs, WXM_EVENT_TOKEN_REFRESHED).len() as u64
    );
    let moved: u64 = finished.iter().map(|e| e.bytes).sum();
    assert_eq!(moved, c.bytes_received + c.bytes_sent, "{c:?}");
    evs
}

/// A client of the emulator whose events (all of them) go to a new log.
fn recorded(emu: &Emulator, o: ClientOpts) -> (TestClient, Arc<EventLog>) {
    let log = EventLog::recording(&[]);
    let c = client(
        emu,
        ClientOpts {
            events: Some(log.clone()),
            ..o
        },
    );
    (c, log)
}

fn faults_fired(emu: &Emulator) -> u64 {
    stats(emu)["faults_fired"].as_u64().expect("faults_fired")
}

fn retry_reasons(evs: &[Ev]) -> Vec<i32> {
    let mut v: Vec<i32> = of_kind(evs, WXM_EVENT_RETRY_SCHEDULED)
        .iter()
        .map(|e| e.retry_reason)
        .collect();
    v.sort();
    v
}

// ---- downloads ------------------------------------------------------------

#[test]
fn every_injected_download_fault_is_one_retry_with_its_reason() {
    let emu = start(Platform::WeCom);
    let size = 600_000u64;
    let (id, want) = add_media(&emu, json!({"size": size, "seed": 21}));
    for parallelism in [1, 4] {
        reset(&emu);
        let (c, log) = recorded(
            &emu,
            ClientOpts {
                chunk: 64 * KIB,
                parallelism,
                attempts: 10,
                ..Default::default()
            },
        );
        for f in [
            json!({"kind": "errcode", "errcode": -1, "count": 2, "media_id": id}),
            json!({"kind": "http_status", "status": 503, "media_id": id}),
            json!({"kind": "reset", "after_bytes": 1000, "media_id": id}),
        ] {
            fault(&emu, f);
        }
        let run = download(&c, &id, None);
        assert!(run.data == want, "parallelism {parallelism}");
        let evs = check_transfer(&log, &run, 0);
        assert_eq!(faults_fired(&emu), 4);
        assert_eq!(
            retry_reasons(&evs),
            [WXM_E_HTTP_STATUS, WXM_E_NETWORK, -1, -1],
            "parallelism {parallelism}: {evs:#?}"
        );
        let failed: Vec<Ev> = of_kind(&evs, WXM_EVENT_REQUEST_FINISHED)
            .into_iter()
            .filter(|e| e.errcode != 0)
            .collect();
        let mut failed_codes: Vec<(i32, i32)> =
            failed.iter().map(|e| (e.errcode, e.http_status)).collect();
        failed_codes.sort();
        assert_eq!(
            failed_codes,
            [
                (WXM_E_HTTP_STATUS, 503),
                (WXM_E_NETWORK, 206),
                (-1, 200),
                (-1, 200)
            ],
            "{failed:#?}"
        );
        let st = stats(&emu);
        assert_eq!(
            run.counted.requests,
            st["requests"]["media/get"].as_u64().expect("count"),
            "every request the emulator saw is one event pair"
        );
        // A plain download: each byte received once.
        assert_eq!(run.counted.bytes_received, size);
        assert_eq!((run.counted.bytes_sent, run.counted.resumed_from), (0, 0));
        assert_eq!(run.counted.retries, 4);
        let started = of_kind(&evs, WXM_EVENT_REQUEST_STARTED);
        // Without this the loop below could check nothing.
        assert!(!started.is_empty(), "{evs:#?}");
        for e in &started {
            assert_eq!(e.endpoint, "cgi-bin/media/get");
            assert!(!e.via_video_url);
            assert!(e.range_end > e.range_start && e.range_end - e.range_start <= 64 * KIB);
        }
        // A parallel download's requests come from its worker threads.
        if parallelism > 1 {
            let mut threads: Vec<_> = started.into_iter().map(|e| e.thread).collect();
            threads.sort();
            threads.dedup();
            assert!(threads.len() > 1, "{threads:?}");
        }
    }
}

#[test]
fn a_failed_download_counts_and_tells_its_outcome() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 200_000, "seed": 22}));
    let (c, log) = recorded(
        &emu,
        ClientOpts {
            attempts: 3,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "http_status", "status": 502, "media_id": id, "count": 100}),
    );
    let run = download(&c, &id, None);
    let evs = check_transfer(&log, &run, WXM_E_HTTP_STATUS);
    assert_eq!(run.counted.requests, 3);
    assert_eq!(run.counted.retries, 2);
    assert_eq!(run.counted.bytes_received, 0);
    assert_eq!(retry_reasons(&evs), [WXM_E_HTTP_STATUS, WXM_E_HTTP_STATUS]);
    let attempts: Vec<u32> = of_kind(&evs, WXM_EVENT_REQUEST_STARTED)
        .iter()
        .map(|e| e.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    // The counters stay readable after the run, and an unknown media is a
    // final error: no retry, one request.
    let run = download(&c, "no-such-media", None);
    check_transfer(&log, &run, 40007);
    assert_eq!((run.counted.requests, run.counted.retries), (1, 0));
}

#[test]
fn token_fetches_and_refreshes_are_events_with_their_source() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 300_000, "seed": 23}));
    let (c, log) = recorded(
        &emu,
        ClientOpts {
            chunk: 64 * KIB,
            ..ClientOpts::credentialed()
        },
    );
    // The token in use dies 30 KB into the first answer: 42001 next.
    fault(
        &emu,
        json!({"kind": "token_expire", "after_bytes": 30_000, "media_id": id}),
    );
    let run = download(&c, &id, None);
    assert!(run.data == want);
    let evs = check_transfer(&log, &run, 0);
    let fetched = of_kind(&evs, WXM_EVENT_TOKEN_FETCHED);
    let refreshed = of_kind(&evs, WXM_EVENT_TOKEN_REFRESHED);
    assert_eq!((fetched.len(), refreshed.len()), (1, 1), "{evs:#?}");
    for e in fetched.iter().chain(&refreshed) {
        assert_eq!(e.token_source, WXM_TOKEN_SOURCE_CREDENTIALS, "{e:?}");
        assert!(e.token_fetch_us > 0, "{e:?}");
        assert_eq!(e.level, WXM_LEVEL_INFO);
    }
    assert_eq!(run.counted.token_refreshes, 1);
    assert_eq!(
        stats(&emu)["token_fetches"].as_u64(),
        Some(2),
        "one fetch, one refresh"
    );
    // The refresh follows the request the token died in (42001 after it).
    let pos = |e: &Ev| evs.iter().position(|x| x == e).expect("in the log");
    let rejected = evs
        .iter()
        .position(|e| e.kind == WXM_EVENT_REQUEST_FINISHED && e.errcode == 42001)
        .expect("a request answered 42001");
    assert!(pos(&refreshed[0]) > rejected, "{evs:#?}");
    assert!(pos(&fetched[0]) < rejected);
    // A static token is never fetched: no token event.
    let (c, log) = recorded(&emu, ClientOpts::default());
    let run = download(&c, &id, None);
    let evs = check_transfer(&log, &run, 0);
    assert!(evs
        .iter()
        .all(|e| !(WXM_EVENT_TOKEN_FETCHED..=WXM_EVENT_TOKEN_SHARED).contains(&e.kind)));
}

#[test]
fn a_video_url_download_names_the_url_path_and_says_so() {
    let emu = start(Platform::Official);
    let (id, want) = add_media(
        &emu,
        json!({"size": 70_001, "seed": 24, "video": true, "kind": "video", "filename": "v.mp4"}),
    );
    let (c, log) = recorded(
        &emu,
        ClientOpts {
            platform: 3,
            chunk: 16 * KIB,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "reset", "after_bytes": 5000, "endpoint": "video", "media_id": id}),
    );
    let run = download(&c, &id, None);
    assert!(run.data == want);
    let evs = check_transfer(&log, &run, 0);
    let started = of_kind(&evs, WXM_EVENT_REQUEST_STARTED);
    let api = &started[0];
    assert_eq!(api.endpoint, "cgi-bin/media/get");
    assert!(!api.via_video_url);
    let body: Vec<&Ev> = started.iter().filter(|e| e.via_video_url).collect();
    assert!(
        body.len() >= 5,
        "70001 bytes in 16 KiB chunks: {started:#?}"
    );
    for e in &body {
        // The URL's path, without host or query.
        assert_eq!(e.endpoint, format!("__video/{id}"), "{e:?}");
    }
    assert_eq!(retry_reasons(&evs), [WXM_E_NETWORK]);
    assert_eq!(run.counted.bytes_received, 70_001);
}

// ---- resume -----------------------------------------------------------------

#[test]
fn a_resume_is_decided_and_a_damaged_part_file_is_refetched() {
    let emu = start(Platform::WeCom);
    let size = 1024 * KIB;
    let (id, want) = add_media(&emu, json!({"size": size, "seed": 25}));
    let (c, log) = recorded(
        &emu,
        ClientOpts {
            chunk: size,
            attempts: 1,
            ..Default::default()
        },
    );
    let dir = tempdir("ev-resume");
    let target = dir.join("r.bin");
    // Interrupted: the connection dies 400 KB into the only request.
    fault(
        &emu,
        json!({"kind": "reset", "after_bytes": 400_000, "media_id": id}),
    );
    let run = download(&c, &id, Some(&target));
    let evs = check_transfer(&log, &run, WXM_E_NETWORK);
    assert!(of_kind(&evs, WXM_EVENT_RESUME_DECIDED).is_empty());
    let (part, _) = wxmedia::download::part_paths(&target);
    let kept = std::fs::metadata(&part).expect("part file kept").len();
    assert!(kept > 0, "kept {kept}");

    let run = download(&c, &id, Some(&target));
    assert!(run.data == want, "{}", run.errmsg);
    let evs = check_transfer(&log, &run, 0);
    let decided = of_kind(&evs, WXM_EVENT_RESUME_DECIDED);
    assert_eq!(decided.len(), 1, "{evs:#?}");
    let d = &decided[0];
    assert!(
        d.resume_offset > 0 && d.resume_offset <= kept,
        "{d:?} kept {kept}"
    );
    assert!(
        d.resume_verified > 0 && d.resume_verified <= d.resume_offset,
        "{d:?}"
    );
    assert_eq!(d.endpoint, "cgi-bin/media/get");
    assert_eq!(run.counted.resumed_from, d.resume_offset);
    // The first request re-fetches the verified overlap.
    let first = &of_kind(&evs, WXM_EVENT_REQUEST_STARTED)[0];
    assert_eq!(first.range_start, d.resume_offset - d.resume_verified);
    assert!(of_kind(&evs, WXM_EVENT_RESUME_CHECK_FAILED).is_empty());
    // Received: the rest, and the overlap again.
    assert_eq!(
        run.counted.bytes_received,
        size - d.resume_offset + d.resume_verified
    );

    // A damaged part file: its record vouches for bytes that are wrong.
    let (part, meta) = wxmedia::download::part_paths(&target);
    std::fs::write(&part, vec![0x5Au8; 300_000]).expect("write part");
    std::fs::write(
        &meta,
        json!({"media_id": id, "endpoint": "Media", "size": size, "complete": 300_000}).to_string(),
    )
    .expect("write meta");
    let run = download(&c, &id, Some(&target));
    assert!(run.data == want, "{}", run.errmsg);
    let evs = check_transfer(&log, &run, 0);
    let k = kinds(&evs);
    let decided = k.iter().position(|&x| x == WXM_EVENT_RESUME_DECIDED);
    let failed = k.iter().position(|&x| x == WXM_EVENT_RESUME_CHECK_FAILED);
    assert!(
        matches!((decided, failed), (Some(a), Some(b)) if a < b),
        "{evs:#?}"
    );
    let f = &of_kind(&evs, WXM_EVENT_RESUME_CHECK_FAILED)[0];
    assert_eq!(f.level, WXM_LEVEL_WARNING);
    assert_eq!(f.resume_offset, 300_000);
    // Downloaded again from byte 0 after the check failed.
    let after: Vec<Ev> = evs[failed.expect("failed") + 1..]
        .iter()
        .filter(|e| e.kind == WXM_EVENT_REQUEST_STARTED)
        .cloned()
        .collect();
    assert_eq!(after.first().map(|e| e.range_start), Some(0), "{evs:#?}");
    assert_eq!(run.counted.resumed_from, 0);
    let _ = std::fs::remove_dir_all(dir);
}

// ---- uploads ------------------------------------------------------------------

fn source_file(tag: &str, len: usize, seed: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = tempdir(tag);
    let path = dir.join("up.bin");
    std::fs::write(&path, media_bytes(b"", len, seed)).expect("write");
    (dir, path)
}

#[test]
fn upload_retries_refreshes_and_expect_continue_are_events() {
    let emu = start(Platform::WeCom);
    let len = 1536 * KIB as usize;
    let (dir, path) = source_file("ev-up", len, 26);
    let (c, log) = recorded(
        &emu,
        ClientOpts {
            attempts: 5,
            ..ClientOpts::credentialed()
        },
    );
    for f in [
        json!({"kind": "errcode", "errcode": -1, "endpoint": "media/upload"}),
        json!({"kind": "http_status", "status": 503, "endpoint": "media/upload"}),
        json!({"kind": "errcode", "errcode": 42001, "endpoint": "media/upload"}),
    ] {
        fault(&emu, f);
    }
    let run = upload(&c, &path);
    let evs = check_transfer(&log, &run, 0);
    assert!(run.media_id.is_some());
    assert_eq!(faults_fired(&emu), 3);
    assert_eq!(retry_reasons(&evs), [WXM_E_HTTP_STATUS, -1], "{evs:#?}");
    assert_eq!(of_kind(&evs, WXM_EVENT_TOKEN_REFRESHED).len(), 1);
    assert_eq!(run.counted.token_refreshes, 1);
    assert_eq!(run.counted.requests, 4);
    let finished = of_kind(&evs, WXM_EVENT_REQUEST_FINISHED);
    let last = finished.last().expect("finished");
    assert_eq!(last.endpoint, "cgi-bin/media/upload");
    assert_eq!(
        (last.errcode, last.http_status, last.bytes),
        (0, 200, len as u64)
    );
    assert_eq!(last.expect_continue, WXM_CONTINUE_BODY_SENT, "{last:?}");
    for e in &finished {
        assert_ne!(e.expect_continue, WXM_CONTINUE_NOT_ASKED, "{e:?}");
    }
    // A body sent again counts again; one answered before it costs none.
    assert!(run.counted.bytes_sent >= len as u64);
    assert_eq!(run.counted.bytes_received, 0);

    // Under 1 MiB no Expect is asked.
    let (dir2, small) = source_file("ev-up-small", 200_000, 27);
    let run = upload(&c, &small);
    let evs = check_transfer(&log, &run, 0);
    let finished = of_kind(&evs, WXM_EVENT_REQUEST_FINISHED);
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].expect_continue, WXM_CONTINUE_NOT_ASKED);
    assert_eq!(run.counted.bytes_sent, 200_000);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(dir2);
}

/// A server that refuses `Expect: 100-continue` with a 417 on its first
/// connection and takes the body on the second.
fn refusing_expect_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().enumerate().take(2) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let head = read_head(&mut s).unwrap_or_default().to_ascii_lowercase();
            if index == 0 {
                let _ = s.write_all(
                    b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let length: u64 = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let _ = std::io::copy(&mut (&mut s).take(length), &mut std::io::sink());
            let body =
                r#"{"errcode":0,"errmsg":"","type":"file","media_id":"MEDIA-OK","created_at":"1"}"#;
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    base
}

#[test]
fn a_refused_expect_is_a_fallback() {
    let base = refusing_expect_server();
    let log = EventLog::recording(&[]);
    let c = new_client(&ClientOpts {
        events: Some(log.clone()),
        ..ClientOpts::at(&base)
    });
    let len = 1100 * KIB as usize;
    let (dir, path) = source_file("ev-417", len, 28);
    let run = upload(&c, &path);
    let evs = check_transfer(&log, &run, 0);
    let shown: Vec<(i32, i32, i32)> = evs
        .iter()
        .filter(|e| e.kind != WXM_EVENT_REQUEST_STARTED)
        .map(|e| (e.kind, e.http_status, e.expect_continue))
        .collect();
    assert_eq!(
        shown,
        [
            (WXM_EVENT_TRANSFER_STARTED, 0, 0),
            (WXM_EVENT_REQUEST_FINISHED, 417, WXM_CONTINUE_REFUSED),
            (WXM_EVENT_FALLBACK, 417, WXM_CONTINUE_REFUSED),
            (WXM_EVENT_REQUEST_FINISHED, 200, WXM_CONTINUE_NOT_ASKED),
            (WXM_EVENT_TRANSFER_FINISHED, 0, 0),
        ],
        "{evs:#?}"
    );
    let fb = &of_kind(&evs, WXM_EVENT_FALLBACK)[0];
    assert_eq!(fb.level, WXM_LEVEL_INFO);
    assert_eq!(
        run.counted.bytes_sent, len as u64,
        "the refused body was never sent"
    );
    assert_eq!((run.counted.requests, run.counted.retries), (2, 0));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn upload_by_url_submit_and_poll_retries_are_events() {
    let emu = start(Platform::WeCom);
    let (id, data) = add_media(&emu, json!({"size": 300_000, "seed": 29}));
    let dir = tempdir("ev-url");
    let local = dir.join("local.bin");
    std::fs::write(&local, &data).expect("write");
    let (c, log) = recorded(&emu, ClientOpts::default());
    for f in [
        json!({"kind": "errcode", "errcode": -1, "endpoint": "media/upload_by_url"}),
        json!({"kind": "errcode", "errcode": -1, "endpoint": "media/get_upload_by_url_result"}),
        json!({"kind": "http_status", "status": 502, "endpoint": "media/get_upload_by_url_result"}),
    ] {
        fault(&emu, f);
    }
    let url = format!("{}/__video/{id}", emu.base_url());
    let run = url_upload(&c, &url, &local);
    let evs = check_transfer(&log, &run, 0);
    assert!(run.media_id.is_some(), "{}", run.errmsg);
    assert_eq!(faults_fired(&emu), 3);
    let retries = of_kind(&evs, WXM_EVENT_RETRY_SCHEDULED);
    let mut reasons: Vec<i32> = retries.iter().map(|e| e.retry_reason).collect();
    reasons.sort();
    let mut want = vec![-1, -1, WXM_E_HTTP_STATUS];
    want.sort();
    assert_eq!(reasons, want, "{evs:#?}");
    let st = stats(&emu);
    let sent = st["requests"]["media/upload_by_url"].as_u64().expect("n")
        + st["requests"]["media/get_upload_by_url_result"]
            .as_u64()
            .expect("n");
    assert_eq!(run.counted.requests, sent);
    let started = of_kind(&evs, WXM_EVENT_REQUEST_STARTED);
    // The submit, sent again after its errcode; then the polls.
    let endpoints: Vec<&str> = started.iter().map(|e| e.endpoint.as_str()).collect();
    assert_eq!(
        endpoints[..2],
        ["cgi-bin/media/upload_by_url"; 2],
        "{endpoints:?}"
    );
    assert!(
        endpoints[2..]
            .iter()
            .all(|e| *e == "cgi-bin/media/get_upload_by_url_result"),
        "{endpoints:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ---- the token store -------------------------------------------------------

#[test]
fn a_token_from_the_store_is_shared_and_a_dead_store_falls_back() {
    let redis = crate::tokens::start_redis();
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 10_000, "seed": 30}));
    let log = EventLog::recording(&[]);
    let store_client = |fallback: bool| {
        // SAFETY: handles used on this thread; the config is freed once.
        unsafe {
            let cfg = wxm_config_new(1);
            assert_eq!(
                wxm_config_set_base_url(cfg, cs(&emu.base_url()).as_ptr()),
                0
            );
            assert_eq!(
                wxm_config_set_credentials(cfg, cs(CORPID).as_ptr(), cs(SECRET).as_ptr()),
                0
            );
            assert_eq!(wxm_config_set_token_store(cfg, cs(&redis.url).as_ptr()), 0);
            assert_eq!(wxm_config_set_token_store_timeouts(cfg, 300, 300), 0);
            if fallback {
                assert_eq!(wxm_config_set_token_store_fallback(cfg, 1), 0);
            }
            watch(cfg, &log, WXM_LEVEL_DEBUG);
            let mut c = std::ptr::null_mut();
            assert_eq!(wxm_client_new(cfg, &mut c), 0);
            wxm_config_free(cfg);
            check_on_drop(c, log.clone());
            TestClient(c)
        }
    };
    // The first client fetches, the second (another token cache, as another
    // process would have) takes it from the store.
    let a = store_client(false);
    let run = download(&a, &id, None);
    let evs = check_transfer(&log, &run, 0);
    let fetched = of_kind(&evs, WXM_EVENT_TOKEN_FETCHED);
    assert_eq!(fetched.len(), 1, "{evs:#?}");
    assert_eq!(fetched[0].token_source, WXM_TOKEN_SOURCE_CREDENTIALS);
    let b = store_client(true);
    let run = download(&b, &id, None);
    let evs = check_transfer(&log, &run, 0);
    let shared = of_kind(&evs, WXM_EVENT_TOKEN_SHARED);
    assert_eq!(shared.len(), 1, "{evs:#?}");
    assert_eq!(shared[0].token_source, WXM_TOKEN_SOURCE_STORE);
    assert!(shared[0].token_fetch_us > 0);
    assert!(of_kind(&evs, WXM_EVENT_TOKEN_FETCHED).is_empty());
    assert_eq!(stats(&emu)["token_fetches"].as_u64(), Some(1));

    // The store dies; WeChat rejects the token: the client allowed to
    // fall back fetches locally, and says so.
    drop(redis);
    admin(&emu, "POST", "/__admin/expire_token", json!({"all": true}));
    let run = download(&b, &id, None);
    let evs = check_transfer(&log, &run, 0);
    let k = kinds(&evs);
    let fb = k.iter().position(|&x| x == WXM_EVENT_FALLBACK);
    let refreshed = k.iter().position(|&x| x == WXM_EVENT_TOKEN_REFRESHED);
    assert!(
        matches!((fb, refreshed), (Some(f), Some(r)) if f < r),
        "{evs:#?}"
    );
    let f = &evs[fb.expect("fallback")];
    assert_eq!((f.level, f.errcode), (WXM_LEVEL_WARNING, WXM_E_TOKEN_STORE));
    assert_eq!(
        evs[refreshed.expect("refresh")].token_source,
        WXM_TOKEN_SOURCE_CREDENTIALS
    );
    assert_eq!(run.counted.token_refreshes, 1);
    // Without the fallback: the store's error, and no fallback event.
    let run = download(&a, &id, None);
    let evs = check_transfer(&log, &run, WXM_E_TOKEN_STORE);
    assert!(of_kind(&evs, WXM_EVENT_FALLBACK).is_empty());
}

// ---- the handler and the counters themselves ------------------------------

#[test]
fn an_info_handler_sees_no_request_events() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 200_000, "seed": 31}));
    let log = EventLog::recording(&[]);
    let c = client(
        &emu,
        ClientOpts {
            events: Some(log.clone()),
            event_level: WXM_LEVEL_INFO,
            chunk: 64 * KIB,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "errcode", "errcode": -1, "media_id": id}),
    );
    let run = download(&c, &id, None);
    assert_eq!(run.rc, 0, "{}", run.errmsg);
    log.assert_ok();
    let evs = log.of(run.counted.transfer_id);
    assert_eq!(
        kinds(&evs),
        [
            WXM_EVENT_TRANSFER_STARTED,
            WXM_EVENT_RETRY_SCHEDULED,
            WXM_EVENT_TRANSFER_FINISHED
        ],
        "{evs:#?}"
    );
    assert!(evs.iter().all(|e| e.level >= WXM_LEVEL_INFO));
    // The requests were counted all the same.
    assert_eq!(run.counted.requests, 5);
    // ERROR: nothing this run emits.
    let quiet = EventLog::recording(&[]);
    let c = client(
        &emu,
        ClientOpts {
            events: Some(quiet.clone()),
            event_level: WXM_LEVEL_ERROR,
            ..Default::default()
        },
    );
    fault(
        &emu,
        json!({"kind": "errcode", "errcode": -1, "media_id": id}),
    );
    assert_eq!(download(&c, &id, None).rc, 0);
    assert!(quiet.events().is_empty(), "{:#?}", quiet.events());
}

#[test]
fn counters_honour_the_callers_size() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 100_000, "seed": 32}));
    let c = client(&emu, ClientOpts::default());
    // SAFETY: live handles; every `out` has the room its `size` says.
    unsafe {
        let d = wxm_download_new(c.0, cs(&id).as_ptr());
        assert!(!d.is_null());
        // Before any run: zero, with the handle's id.
        let mut before = empty_counters();
        assert_eq!(wxm_download_counters(d, &mut before), 0);
        assert_ne!(before.transfer_id, 0);
        assert_eq!(Counted::from(before).requests, 0);
        let mut sink: Vec<u8> = Vec::new();
        assert_eq!(
            wxm_download_to_sink(d, Some(keep), &mut sink as *mut _ as *mut c_void),
            0
        );
        let mut full = empty_counters();
        assert_eq!(wxm_download_counters(d, &mut full), 0);
        assert_eq!(full.size, std::mem::size_of::<wxm_counters>());
        assert_eq!(full.transfer_id, before.transfer_id);
        assert!(full.requests >= 1 && full.bytes_received == 100_000);

        // Too small for even the id: refused, nothing written.
        for size in [0usize, 8, 15] {
            let mut small = empty_counters();
            small.size = size;
            small.requests = 77;
            assert_eq!(wxm_download_counters(d, &mut small), WXM_E_INVALID_ARG);
            assert_eq!((small.size, small.requests), (size, 77));
        }
        assert_eq!(
            wxm_download_counters(d, std::ptr::null_mut()),
            WXM_E_INVALID_ARG
        );

        // An older, shorter struct (up to `retries`): that prefix only.
        let older = std::mem::offset_of!(wxm_counters, bytes_received);
        let mut bytes = vec![0xA5u8; std::mem::size_of::<wxm_counters>()];
        let out = bytes.as_mut_ptr() as *mut wxm_counters;
        std::ptr::addr_of_mut!((*out).size).write_unaligned(older);
        assert_eq!(wxm_download_counters(d, out), 0);
        let got = out.read_unaligned();
        assert_eq!(got.size, older);
        assert_eq!(
            (got.transfer_id, got.requests, got.retries),
            (full.transfer_id, full.requests, full.retries)
        );
        assert!(
            bytes[older..].iter().all(|&b| b == 0xA5),
            "written past size"
        );
        wxm_download_free(d);

        // The upload getters follow the same rule.
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        let mut small = empty_counters();
        small.size = 4;
        assert_eq!(wxm_upload_counters(u, &mut small), WXM_E_INVALID_ARG);
        wxm_upload_free(u);
        let j = wxm_url_upload_new(
            c.0,
            cs("file").as_ptr(),
            cs("http://127.0.0.1:9/x").as_ptr(),
            cs("x.bin").as_ptr(),
        );
        assert_eq!(wxm_url_upload_counters(j, &mut small), WXM_E_INVALID_ARG);
        let mut ok = empty_counters();
        assert_eq!(wxm_url_upload_counters(j, &mut ok), 0);
        assert_ne!(ok.transfer_id, 0);
        wxm_url_upload_free(j);
    }
}

#[test]
fn the_handler_is_let_go_once_after_the_last_holder() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 50_000, "seed": 33}));
    let log = EventLog::recording(&[]);
    let c = client(
        &emu,
        ClientOpts {
            events: Some(log.clone()),
            ..Default::default()
        },
    );
    // SAFETY: live handles; the download outlives its client.
    unsafe {
        let d = wxm_download_new(c.0, cs(&id).as_ptr());
        drop(c);
        assert_eq!(log.freed.load(std::sync::atomic::Ordering::SeqCst), 0);
        let mut sink: Vec<u8> = Vec::new();
        assert_eq!(
            wxm_download_to_sink(d, Some(keep), &mut sink as *mut _ as *mut c_void),
            0
        );
        assert!(log.calls.load(std::sync::atomic::Ordering::SeqCst) >= 4);
        wxm_download_free(d);
    }
    assert_eq!(log.freed.load(std::sync::atomic::Ordering::SeqCst), 1);
    // An unknown level is refused, and the user_data let go at once.
    let other = EventLog::recording(&[]);
    // SAFETY: a live config, freed once.
    unsafe {
        let cfg = wxm_config_new(1);
        let ud = Arc::into_raw(other.clone()) as *mut c_void;
        assert_eq!(
            wxm_config_set_event_handler(cfg, None, ud, Some(free_other), 15),
            WXM_E_INVALID_ARG
        );
        wxm_config_free(cfg);
    }
    assert_eq!(Arc::strong_count(&other), 1);
}

unsafe extern "C" fn free_other(ud: *mut c_void) {
    // SAFETY: the Arc::into_raw of the test above, let go once.
    drop(unsafe { Arc::from_raw(ud as *const EventLog) });
}

/// The check every client's events get can fail: a token, a secret or an
/// emulator-issued token in an endpoint or message, a NULL string or a
/// wrong `size` are each reported.
#[test]
fn the_leak_check_of_every_event_can_fail() {
    let endpoint = cs("cgi-bin/media/get");
    let event =
        |endpoint: *const std::ffi::c_char, message: &std::ffi::CStr, size: usize| wxm_event {
            size,
            kind: WXM_EVENT_REQUEST_STARTED,
            level: WXM_LEVEL_DEBUG,
            time_ns: 1,
            transfer_id: 1,
            endpoint,
            message: message.as_ptr(),
            range_start: 0,
            range_end: 0,
            http_status: 0,
            errcode: 0,
            bytes: 0,
            duration_us: 0,
            attempt: 1,
            retry_reason: 0,
            backoff_ms: 0,
            token_source: 0,
            expect_continue: 0,
            token_fetch_us: 0,
            resume_offset: 0,
            resume_verified: 0,
            via_video_url: 0,
            reserved: 0,
            method: c"GET".as_ptr(),
        };
    let full = std::mem::size_of::<wxm_event>();
    let fine = cs("GET cgi-bin/media/get bytes=0-15");
    let leaking = [
        format!("GET ?access_token={TOKEN}"),
        format!("secret {SECRET}"),
        "token wxmtok12_abcdef".to_string(),
        "own-secret-1234 in here".to_string(),
    ];
    let log = EventLog::checking(&["own-secret-1234"]);
    let feed = |e: &wxm_event| {
        // SAFETY: a live log and a valid event, as the library passes them.
        unsafe { on_event(Arc::as_ptr(&log) as *mut c_void, e) }
    };
    feed(&event(endpoint.as_ptr(), &fine, full));
    log.assert_ok();
    for m in &leaking {
        let log_before = log.problems().len();
        let m = cs(m);
        feed(&event(endpoint.as_ptr(), &m, full));
        assert_eq!(log.problems().len(), log_before + 1, "{m:?} not flagged");
    }
    let leaky_endpoint = cs(&format!("cgi-bin/x/{TOKEN}"));
    feed(&event(leaky_endpoint.as_ptr(), &fine, full));
    feed(&event(std::ptr::null(), &fine, full));
    feed(&event(endpoint.as_ptr(), &fine, full - 8));
    assert_eq!(
        log.problems().len(),
        leaking.len() + 3,
        "{:#?}",
        log.problems()
    );
}

/// A host's token provider: `TOKEN_A` until asked to refresh, then (after
/// a slow fetch, so that every worker meets the rejection meanwhile)
/// `TOKEN_B`.
struct SlowProvider {
    forced: std::sync::atomic::AtomicU32,
}

const TOKEN_A: &str = "provided-token-A-8d2e";
const TOKEN_B: &str = "provided-token-B-51c9";

unsafe extern "C" fn slow_provider(
    ud: *mut c_void,
    force: i32,
    buf: *mut std::ffi::c_char,
    cap: usize,
    len: *mut usize,
) -> i32 {
    // SAFETY: ud is the SlowProvider the test keeps alive.
    let st = unsafe { &*(ud as *const SlowProvider) };
    let token = if force != 0 {
        st.forced.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(600));
        TOKEN_B
    } else {
        TOKEN_A
    };
    if token.len() > cap {
        return -1;
    }
    // SAFETY: buf has room for cap >= token.len() bytes; len is live.
    unsafe {
        std::ptr::copy_nonoverlapping(token.as_ptr(), buf as *mut u8, token.len());
        *len = token.len();
    }
    0
}

/// WeChat invalidates the token while four workers download: each meets
/// the rejection, one fetches, the others take its token. The transfer
/// fetched once: one TOKEN_REFRESHED, and the counter says the same.
#[test]
fn a_token_rejected_in_every_worker_is_refreshed_and_counted_once() {
    let emu = start(Platform::WeCom);
    for t in [TOKEN_A, TOKEN_B] {
        admin(&emu, "POST", "/__admin/tokens", json!({"token": t}));
    }
    let (id, want) = add_media(&emu, json!({"size": 2_000_000, "seed": 34}));
    let log = EventLog::recording(&[TOKEN_A, TOKEN_B]);
    let st = SlowProvider {
        forced: std::sync::atomic::AtomicU32::new(0),
    };
    // SAFETY: handles used on this thread; st outlives the client.
    let c = unsafe {
        let cfg = wxm_config_new(1);
        assert_eq!(
            wxm_config_set_base_url(cfg, cs(&emu.base_url()).as_ptr()),
            0
        );
        assert_eq!(
            wxm_config_set_token_provider(
                cfg,
                Some(slow_provider),
                &st as *const SlowProvider as *mut c_void,
                None
            ),
            0
        );
        assert_eq!(wxm_config_set_chunk_size(cfg, 64 * KIB), 0);
        assert_eq!(wxm_config_set_parallelism(cfg, 4), 0);
        watch(cfg, &log, WXM_LEVEL_DEBUG);
        let mut c = std::ptr::null_mut();
        assert_eq!(wxm_client_new(cfg, &mut c), 0);
        wxm_config_free(cfg);
        check_on_drop(c, log.clone());
        TestClient(c)
    };
    // Every answer takes ~160 ms, so the workers are all mid-request when
    // the token dies, and all start their next request within the
    // provider's 600 ms.
    fault(
        &emu,
        json!({"kind": "throttle", "media_id": id, "bytes_per_sec": 400_000, "count": 1000}),
    );
    let base = emu.base_url();
    let expire = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
        agent
            .post(&format!("{base}/__admin/expire_token"))
            .send(json!({"token": TOKEN_A}).to_string().as_bytes())
            .expect("expire");
    });
    let run = download(&c, &id, None);
    expire.join().expect("join");
    assert!(run.data == want, "{}", run.errmsg);
    let evs = check_transfer(&log, &run, 0);
    let rejected = of_kind(&evs, WXM_EVENT_REQUEST_FINISHED)
        .into_iter()
        .filter(|e| e.errcode == 42001)
        .count();
    assert!(rejected >= 2, "the workers met the rejection: {rejected}");
    assert_eq!(st.forced.load(std::sync::atomic::Ordering::SeqCst), 1);
    let refreshed = of_kind(&evs, WXM_EVENT_TOKEN_REFRESHED);
    assert_eq!(refreshed.len(), 1, "{evs:#?}");
    assert_eq!(refreshed[0].token_source, WXM_TOKEN_SOURCE_PROVIDER);
    assert!(refreshed[0].token_fetch_us >= 600_000);
}

/// Failures end the transfer with their code, counted like successes.
#[test]
fn failed_uploads_finish_with_their_code() {
    let emu = start(Platform::WeCom);
    let (c, log) = recorded(
        &emu,
        ClientOpts {
            attempts: 2,
            ..Default::default()
        },
    );
    // A final errcode: sent once, not retried.
    let (dir, path) = source_file("ev-up-fail", 300_000, 35);
    fault(
        &emu,
        json!({"kind": "errcode", "errcode": 40004, "endpoint": "media/upload"}),
    );
    let run = upload(&c, &path);
    let evs = check_transfer(&log, &run, 40004);
    assert_eq!((run.counted.requests, run.counted.retries), (1, 0));
    assert!(of_kind(&evs, WXM_EVENT_RETRY_SCHEDULED).is_empty());
    // Transient until the attempts run out.
    fault(
        &emu,
        json!({"kind": "http_status", "status": 500, "endpoint": "media/upload", "count": 2}),
    );
    let run = upload(&c, &path);
    check_transfer(&log, &run, WXM_E_HTTP_STATUS);
    assert_eq!((run.counted.requests, run.counted.retries), (2, 1));
    // An upload by URL whose job fails (nothing listens at the URL): the
    // job's detail errcode.
    let local = dir.join("up.bin");
    let run = url_upload(&c, "http://127.0.0.1:9/nothing.bin", &local);
    let evs = check_transfer(&log, &run, 830003);
    assert!(
        of_kind(&evs, WXM_EVENT_REQUEST_STARTED).len() >= 2,
        "submit and poll"
    );
    let _ = std::fs::remove_dir_all(dir);
}
