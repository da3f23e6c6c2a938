//! `Client::call_api` and its retry decisions (`crate::retry`): what may be
//! sent again depends on what the request does on the server.

use super::{client, json, Answer, Script};
use crate::error::Error;
use crate::retry::Effect;
use std::sync::atomic::AtomicBool;

fn submit(
    c: &crate::client::Client,
) -> crate::error::Result<serde_json::Map<String, serde_json::Value>> {
    c.call_api(
        "media/upload_by_url",
        &serde_json::json!({"scene": 1, "type": "video", "url": "https://example.invalid/v.mp4"}),
        Effect::SubmitsJob,
        &AtomicBool::new(false),
    )
}

#[test]
fn a_job_submission_whose_answer_is_lost_is_not_sent_again() {
    let script = Script::new([
        Answer::Drop,
        json(serde_json::json!({"errcode": 0, "jobid": "j1"})),
    ]);
    let c = client(&script, |_| {});
    let got = submit(&c);
    assert!(matches!(got, Err(Error::OutcomeUnknown(_))), "{got:?}");
    assert_eq!(script.requests().len(), 1, "the job was submitted twice");
    assert!(script.requests()[0].starts_with("POST /cgi-bin/media/upload_by_url?access_token="));
}

#[test]
fn a_job_submission_that_never_left_is_sent_again() {
    let script = Script::new([
        Answer::Refuse,
        json(serde_json::json!({"errcode": 0, "jobid": "j1"})),
    ]);
    let c = client(&script, |_| {});
    let got = submit(&c).expect("submitted");
    assert_eq!(got["jobid"], "j1");
    // The refused connection took its answer; the submission went once.
    assert_eq!(script.left(), 0);
    assert_eq!(script.requests().len(), 1);
}

#[test]
fn an_errcode_minus_one_is_retried_even_for_a_job() {
    let script = Script::new([
        json(serde_json::json!({"errcode": -1, "errmsg": "system error"})),
        json(serde_json::json!({"errcode": 0, "jobid": "j2"})),
    ]);
    let c = client(&script, |_| {});
    let got = submit(&c).expect("submitted");
    assert_eq!(got["jobid"], "j2");
    assert_eq!(script.requests().len(), 2);
}

#[test]
fn a_read_is_retried_until_the_attempts_run_out() {
    let script = Script::new((0..10).map(|_| Answer::Drop));
    let c = client(&script, |cfg| cfg.set_retries(3, 1).expect("retries"));
    let got = c.call_api(
        "media/get_upload_by_url_result",
        &serde_json::json!({"jobid": "j"}),
        Effect::Reads,
        &AtomicBool::new(false),
    );
    assert!(matches!(got, Err(Error::Network(_))), "{got:?}");
    assert_eq!(script.requests().len(), 3);
}

#[test]
fn a_rejected_static_token_is_not_retried() {
    let script = Script::new([
        json(serde_json::json!({"errcode": 40014, "errmsg": "invalid access_token"})),
        json(serde_json::json!({"errcode": 0})),
    ]);
    let c = client(&script, |_| {});
    let got = submit(&c);
    assert!(
        matches!(got, Err(Error::WeChat { code: 40014, .. })),
        "{got:?}"
    );
    assert_eq!(script.requests().len(), 1);
}
