//! Token sources beyond static tokens and credentials: a host's provider
//! callback, and one token shared by many processes through Redis.

use crate::support::*;
use serde_json::json;
use std::ffi::{c_char, c_void};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use wxmedia::ffi::*;

struct ProviderState {
    calls: AtomicU32,
    forced: AtomicU32,
    token: std::sync::Mutex<String>,
}

unsafe extern "C" fn provider(
    ud: *mut c_void,
    force: i32,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> i32 {
    // SAFETY: ud is the ProviderState the test keeps alive; buf has cap bytes; len is live.
    let st = unsafe { &*(ud as *const ProviderState) };
    st.calls.fetch_add(1, Ordering::SeqCst);
    if force != 0 {
        st.forced.fetch_add(1, Ordering::SeqCst);
    }
    let token = st.token.lock().map(|t| t.clone()).unwrap_or_default();
    let t = token.as_bytes();
    if t.len() > cap {
        return -1;
    }
    // SAFETY: t.len() <= cap.
    unsafe {
        std::ptr::copy_nonoverlapping(t.as_ptr(), buf as *mut u8, t.len());
        *len = t.len();
    }
    0
}

unsafe extern "C" fn failing_provider(
    _: *mut c_void,
    _: i32,
    _: *mut c_char,
    _: usize,
    _: *mut usize,
) -> i32 {
    40013
}

fn provider_client(
    emu: &Emulator,
    f: wxm_token_provider_fn,
    st: *const ProviderState,
) -> TestClient {
    // SAFETY: handles used on this thread; st outlives the client.
    unsafe {
        let cfg = wxm_config_new(1);
        assert_eq!(
            wxm_config_set_base_url(cfg, cs(&emu.base_url()).as_ptr()),
            0
        );
        assert_eq!(
            wxm_config_set_token_provider(cfg, f, st as *mut c_void, None),
            0
        );
        assert_eq!(wxm_config_set_chunk_size(cfg, 16 * 1024), 0);
        assert_eq!(wxm_config_set_parallelism(cfg, 3), 0);
        let mut c = std::ptr::null_mut();
        assert_eq!(wxm_client_new(cfg, &mut c), 0);
        wxm_config_free(cfg);
        TestClient(c)
    }
}

#[test]
fn host_token_provider_is_asked_once_and_again_after_a_rejection() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 200_000, "seed": 1}));
    let st = ProviderState {
        calls: AtomicU32::new(0),
        forced: AtomicU32::new(0),
        token: std::sync::Mutex::new(TOKEN.to_string()),
    };
    let c = provider_client(&emu, Some(provider), &st);
    for _ in 0..3 {
        let got = download_sink(&c, &id, 0);
        assert_eq!(got.rc, 0, "{}", got.errmsg);
        assert!(got.data == want);
    }
    assert_eq!(st.calls.load(Ordering::SeqCst), 1, "the token is cached");
    assert_eq!(st.forced.load(Ordering::SeqCst), 0);
    // WeChat stops accepting it; the host's service has a new one.
    admin(
        &emu,
        "POST",
        "/__admin/expire_token",
        json!({"token": TOKEN}),
    );
    admin(
        &emu,
        "POST",
        "/__admin/tokens",
        json!({"token": "fresh-provider-token-9"}),
    );
    *st.token.lock().expect("lock") = "fresh-provider-token-9".into();
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert!(got.data == want);
    assert_eq!(st.calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        st.forced.load(Ordering::SeqCst),
        1,
        "asked with force_refresh"
    );
}

#[test]
fn a_failing_provider_answers_its_code() {
    let emu = start(Platform::WeCom);
    let c = provider_client(&emu, Some(failing_provider), std::ptr::null());
    assert_eq!(download_sink(&c, "x", 0).rc, 40013);
}

// ---- Redis: one token for many processes ---------------------------------

struct Redis {
    child: Child,
    url: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_redis() -> Redis {
    let bin = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("redis-server is not installed: run `make deps` (apt-get install redis-server)");
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not come up"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Redis {
        child,
        url: format!("redis://127.0.0.1:{port}"),
    }
}

/// Runs in a child process (the parent re-executes this test binary).
#[test]
#[ignore = "entry point for child processes of shared_token_across_processes"]
fn child_download_with_shared_token() {
    let (Ok(base), Ok(redis), Ok(media)) = (
        std::env::var("WXM_CHILD_BASE"),
        std::env::var("WXM_CHILD_REDIS"),
        std::env::var("WXM_CHILD_MEDIA"),
    ) else {
        panic!("run by shared_token_across_processes only");
    };
    // SAFETY: handles used on this thread and freed.
    unsafe {
        let cfg = wxm_config_new(1);
        assert_eq!(wxm_config_set_base_url(cfg, cs(&base).as_ptr()), 0);
        assert_eq!(
            wxm_config_set_credentials(cfg, cs("wxm-corp").as_ptr(), cs("wxm-secret").as_ptr()),
            0
        );
        assert_eq!(wxm_config_set_token_store(cfg, cs(&redis).as_ptr()), 0);
        let mut c = std::ptr::null_mut();
        assert_eq!(wxm_client_new(cfg, &mut c), 0);
        wxm_config_free(cfg);
        let c = TestClient(c);
        let got = download_sink(&c, &media, 0);
        assert_eq!(got.rc, 0, "{}", got.errmsg);
        assert!(!got.errmsg.contains("wxm-secret"));
    }
}

fn run_children(n: usize, emu: &Emulator, redis: &Redis, media: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<Child> = (0..n)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    &test_name(module_path!(), "child_download_with_shared_token"),
                    "--test-threads",
                    "1",
                ])
                .env("WXM_CHILD_BASE", emu.base_url())
                .env("WXM_CHILD_REDIS", &redis.url)
                .env("WXM_CHILD_MEDIA", media)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("child starts")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("child ends");
        assert!(
            out.status.success(),
            "child failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn shared_token_across_processes() {
    let redis = start_redis();
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 50_000, "seed": 2}));
    // Six processes at once, one token fetch.
    run_children(6, &emu, &redis, &id);
    assert_eq!(
        stats(&emu)["token_fetches"].as_u64(),
        Some(1),
        "one fetch for every process"
    );
    // WeChat invalidates the token: the next processes refresh it once between them.
    admin(&emu, "POST", "/__admin/expire_token", json!({"all": true}));
    run_children(6, &emu, &redis, &id);
    assert_eq!(
        stats(&emu)["token_fetches"].as_u64(),
        Some(2),
        "one refresh for every process"
    );
    // And a client in this process uses the shared token without fetching.
    let c = client(
        &emu,
        ClientOpts {
            token: None,
            credentials: Some(("wxm-corp".into(), "wxm-secret".into())),
            ..Default::default()
        },
    );
    drop(c);
}

#[test]
fn unreachable_store_falls_back_to_fetching_alone() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 5000, "seed": 3}));
    let port = free_port();
    // SAFETY: handles used on this thread and freed.
    unsafe {
        let cfg = wxm_config_new(1);
        assert_eq!(
            wxm_config_set_base_url(cfg, cs(&emu.base_url()).as_ptr()),
            0
        );
        assert_eq!(
            wxm_config_set_credentials(cfg, cs("wxm-corp").as_ptr(), cs("wxm-secret").as_ptr()),
            0
        );
        assert_eq!(
            wxm_config_set_token_store(cfg, cs(&format!("redis://127.0.0.1:{port}")).as_ptr()),
            0
        );
        assert_eq!(
            wxm_config_set_token_store(cfg, cs("http://nope").as_ptr()),
            wxmedia::error::WXM_E_INVALID_ARG
        );
        let mut c = std::ptr::null_mut();
        assert_eq!(wxm_client_new(cfg, &mut c), 0);
        wxm_config_free(cfg);
        let c = TestClient(c);
        let got = download_sink(&c, &id, 0);
        assert_eq!(got.rc, 0, "{}", got.errmsg);
        assert_eq!(got.data, want);
    }
}
