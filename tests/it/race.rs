//! Races on the single-flight token refresh (src/token.rs), counted
//! through the emulator: many threads find the token expired at once, for
//! several rounds, and each expiry costs exactly one fetch; a host rotates
//! a static token while transfers run. `make tsan` runs this file under
//! ThreadSanitizer (nightly -Zsanitizer=thread with -Zbuild-std).

use crate::support::{
    self, add_media, admin, cs, start, stats, ClientOpts, Platform, CORPID, SECRET, TOKEN,
};
use serde_json::json;
use std::sync::Barrier;
use wxmedia::ffi::*;

const THREADS: usize = 24;
const ROUNDS: usize = 4;

#[test]
fn every_expiry_costs_one_fetch_however_many_threads_see_it() {
    let emu = start(Platform::WeCom);
    let media: Vec<(String, Vec<u8>)> = (0..THREADS)
        .map(|i| add_media(&emu, json!({"size": 20_000 + i * 16, "seed": 900 + i})))
        .collect();
    let mut o = ClientOpts::at(&emu.base_url());
    o.token = None;
    o.credentials = Some((CORPID.to_string(), SECRET.to_string()));
    o.parallelism = 2;
    o.chunk = 4096;
    o.attempts = 4;
    let c = support::new_client(&o);
    // Warm up: the first fetch.
    assert_eq!(support::download_sink(&c, &media[0].0, 0).rc, 0);
    let fetches = || {
        stats(&emu)["token_fetches"]
            .as_u64()
            .expect("token_fetches")
    };
    assert_eq!(fetches(), 1);
    for round in 0..ROUNDS {
        admin(&emu, "POST", "/__admin/expire_token", json!({"all": true}));
        let before = fetches();
        let barrier = Barrier::new(THREADS);
        std::thread::scope(|s| {
            for (id, want) in &media {
                let (c, barrier) = (&c, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let got = support::download_sink(c, id, 0);
                    assert_eq!(got.rc, 0, "round {round}: {}", got.errmsg);
                    assert!(
                        got.data == *want && got.in_order,
                        "round {round}: wrong bytes"
                    );
                });
            }
        });
        assert_eq!(
            fetches() - before,
            1,
            "round {round}: {THREADS} threads saw one expired token"
        );
    }
}

#[test]
fn a_host_rotating_its_token_races_running_transfers() {
    let emu = start(Platform::WeCom);
    let tokens: Vec<String> = (0..4).map(|i| format!("rotated-token-{i}-x7Q")).collect();
    for t in &tokens {
        admin(&emu, "POST", "/__admin/tokens", json!({"token": t}));
    }
    let media: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| add_media(&emu, json!({"size": 50_000 + i, "seed": 700 + i})))
        .collect();
    let mut o = ClientOpts::at(&emu.base_url());
    o.token = Some(TOKEN.to_string());
    o.chunk = 4096;
    o.parallelism = 3;
    let c = support::new_client(&o);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let (c2, stop2, tokens) = (&c, &stop, &tokens);
        s.spawn(move || {
            let mut i = 0;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let t = cs(&tokens[i % tokens.len()]);
                // SAFETY: a live client; documented safe while transfers run.
                assert_eq!(unsafe { wxm_client_set_access_token(c2.0, t.as_ptr()) }, 0);
                i += 1;
                std::thread::yield_now();
            }
        });
        let workers: Vec<_> = media
            .iter()
            .map(|(id, want)| {
                let c = &c;
                s.spawn(move || {
                    for _ in 0..3 {
                        let got = support::download_sink(c, id, 0);
                        assert_eq!(got.rc, 0, "{}", got.errmsg);
                        assert!(got.data == *want);
                        for t in tokens.iter().map(String::as_str).chain([TOKEN]) {
                            assert!(!got.errmsg.contains(t));
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}
