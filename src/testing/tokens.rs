//! The token source (`crate::token`): one fetch for many threads, a
//! refresh after a rejection, a static token that cannot be replaced.

use super::{agent, json, Answer, Script, BASE_URL};
use crate::auth::TokenApi;
use crate::error::Error;
use crate::token::{Origin, TokenSource};
use std::sync::atomic::Ordering;
use std::sync::Barrier;
use std::time::Duration;

fn wechat() -> TokenSource {
    TokenSource::new(
        None,
        Origin::WeChat {
            api: TokenApi::Stable,
            id: "wx-app".into(),
            secret: "wx-secret-5e1f".into(),
        },
        None,
        Default::default(),
    )
}

fn token_answer(token: &str) -> serde_json::Value {
    serde_json::json!({"access_token": token, "expires_in": 7200})
}

#[test]
fn threads_that_find_no_token_cause_one_fetch() {
    let script = Script::new([
        // Slow, so that every thread asks while the fetch is under way.
        Answer::Slow(
            Duration::from_millis(300),
            super::http(
                "200 OK",
                &[("Content-Type", "application/json")],
                token_answer("fetched-token-0001").to_string().as_bytes(),
            ),
        ),
        json(token_answer("second-fetch-0002")),
    ]);
    let agent = agent(&script);
    let source = wechat();
    let start = Barrier::new(8);
    let got: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    source.get(&agent, BASE_URL).expect("token")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    assert!(got.iter().all(|t| t == "fetched-token-0001"), "{got:?}");
    assert_eq!(script.requests().len(), 1, "more than one fetch");
    assert_eq!(source.fetches.load(Ordering::Relaxed), 1);
    assert!(script.requests()[0].starts_with("POST /cgi-bin/stable_token "));
}

#[test]
fn a_rejected_token_is_refreshed_once_and_forced() {
    let script = Script::new([
        json(token_answer("first-token-00001")),
        json(token_answer("second-token-0002")),
    ]);
    let agent = agent(&script);
    let source = wechat();
    let first = source.get(&agent, BASE_URL).expect("token");
    assert_eq!(first, "first-token-00001");
    let second = source
        .refresh_after_rejection(&agent, BASE_URL, &first)
        .expect("refresh");
    assert_eq!(second, "second-token-0002");
    // A thread that also used the rejected token takes the new one: no fetch.
    let again = source
        .refresh_after_rejection(&agent, BASE_URL, &first)
        .expect("refresh");
    assert_eq!(again, "second-token-0002");
    let requests = script.requests();
    assert_eq!(requests.len(), 2);
    // The stable endpoint hands out the cached token unless forced.
    assert!(
        requests[0].contains("\"force_refresh\":false"),
        "{}",
        requests[0]
    );
    assert!(
        requests[1].contains("\"force_refresh\":true"),
        "{}",
        requests[1]
    );
    assert_eq!(source.get(&agent, BASE_URL).expect("token"), second);
}

#[test]
fn a_static_token_is_final() {
    let script = Script::new([json(token_answer("never-taken-00001"))]);
    let agent = agent(&script);
    let source = TokenSource::new(
        Some("static-token-0001".into()),
        Origin::Static,
        None,
        Default::default(),
    );
    assert_eq!(
        source.get(&agent, BASE_URL).expect("token"),
        "static-token-0001"
    );
    assert!(matches!(
        source.refresh_after_rejection(&agent, BASE_URL, "static-token-0001"),
        Err(Error::NoToken)
    ));
    assert!(script.requests().is_empty(), "a static token was fetched");
    let none = TokenSource::new(None, Origin::Static, None, Default::default());
    assert!(matches!(none.get(&agent, BASE_URL), Err(Error::NoToken)));
}
