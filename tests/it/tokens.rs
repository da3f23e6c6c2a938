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
        client_from_config(cfg)
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

pub(crate) struct Redis {
    child: Child,
    port: u16,
    pub(crate) url: String,
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

fn redis_bin() -> &'static str {
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect(
            "redis-server is not installed: run `make redis-deps` (apt-get install redis-server)",
        )
}

pub(crate) fn start_redis() -> Redis {
    start_redis_with(&[])
}

/// A redis-server on a free loopback port, with `extra` arguments; with
/// `--tls-port` among them that port is the one used (and `--port 0`).
fn start_redis_with(extra: &[&str]) -> Redis {
    let port = free_port();
    let tls = extra.contains(&"--tls-port");
    let mut args: Vec<String> = if tls {
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
        ]
    } else {
        vec!["--port".into(), port.to_string()]
    };
    args.extend(
        ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.extend(
        extra
            .iter()
            .filter(|a| **a != "--tls-port")
            .map(|s| s.to_string()),
    );
    let child = Command::new(redis_bin())
        .args(&args)
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
    let scheme = if tls { "rediss" } else { "redis" };
    Redis {
        child,
        port,
        url: format!("{scheme}://127.0.0.1:{port}"),
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
        let c = client_from_config(cfg);
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
    let c = client(&emu, ClientOpts::credentialed());
    drop(c);
}

// ---- Redis: failures are WXM_E_TOKEN_STORE, fast, without the password ----

const SECRETS: [&str; 4] = ["wxm-secret", "s3cret-pw", "wrong-pw", "alice-pw"];

/// How a store client is configured beyond credentials and the URL.
#[derive(Default)]
struct StoreOpts {
    /// (connect_ms, command_ms)
    timeouts: Option<(u32, u32)>,
    fallback: bool,
    ca_file: Option<String>,
}

fn store_client(emu: &Emulator, url: &str, o: StoreOpts) -> TestClient {
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
        assert_eq!(wxm_config_set_token_store(cfg, cs(url).as_ptr()), 0);
        if let Some((connect, command)) = o.timeouts {
            assert_eq!(
                wxm_config_set_token_store_timeouts(cfg, connect, command),
                0
            );
        }
        if o.fallback {
            assert_eq!(wxm_config_set_token_store_fallback(cfg, 1), 0);
        }
        if let Some(ca) = &o.ca_file {
            assert_eq!(wxm_config_set_ca_file(cfg, cs(ca).as_ptr()), 0);
        }
        let leaks = watch_for_leaks(cfg, &[]);
        let mut c = std::ptr::null_mut();
        assert_eq!(
            wxm_client_new(cfg, &mut c),
            0,
            "{:?}",
            text(wxm_last_errmsg())
        );
        wxm_config_free(cfg);
        check_on_drop(c, leaks);
        TestClient(c)
    }
}

fn fallbacks(c: &TestClient) -> u64 {
    let mut n = u64::MAX;
    // SAFETY: a live client and a live out-parameter.
    assert_eq!(unsafe { wxm_client_token_store_fallbacks(c.0, &mut n) }, 0);
    n
}

/// A download that must fail with WXM_E_TOKEN_STORE, quickly, naming
/// `store` in its message and quoting no secret: the message.
fn expect_store_error(c: &TestClient, media: &str, store: &str) -> String {
    let t0 = std::time::Instant::now();
    let got = download_sink(c, media, 0);
    let took = t0.elapsed();
    assert_eq!(got.rc, wxmedia::error::WXM_E_TOKEN_STORE, "{}", got.errmsg);
    assert!(
        took < std::time::Duration::from_secs(5),
        "took {took:?}: {}",
        got.errmsg
    );
    assert!(got.data.is_empty());
    assert!(
        got.errmsg.contains(store),
        "{:?} does not name {store}",
        got.errmsg
    );
    for s in SECRETS {
        assert!(!got.errmsg.contains(s), "{:?} leaks {s}", got.errmsg);
    }
    got.errmsg
}

fn redis_cli(r: &Redis, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &r.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "redis-cli {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const QUICK: Option<(u32, u32)> = Some((1000, 1000));

#[test]
fn requirepass_right_wrong_and_missing_password() {
    let redis = start_redis_with(&["--requirepass", "s3cret-pw"]);
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 5000, "seed": 4}));
    let p = redis.port;
    let good = store_client(
        &emu,
        &format!("redis://:s3cret-pw@127.0.0.1:{p}/0"),
        StoreOpts::default(),
    );
    let got = download_sink(&good, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    let opts = || StoreOpts {
        timeouts: QUICK,
        ..Default::default()
    };
    let wrong = store_client(&emu, &format!("redis://:wrong-pw@127.0.0.1:{p}/0"), opts());
    let msg = expect_store_error(&wrong, &id, &format!("redis://127.0.0.1:{p}/0"));
    assert!(msg.contains("WRONGPASS"), "{msg}");
    let none = store_client(&emu, &format!("redis://127.0.0.1:{p}"), opts());
    let msg = expect_store_error(&none, &id, &format!("redis://127.0.0.1:{p}/0"));
    assert!(msg.contains("NOAUTH"), "{msg}");
    assert_eq!(fallbacks(&none), 0);
    assert_eq!(stats(&emu)["token_fetches"].as_u64(), Some(1));
}

#[test]
fn acl_user_and_database() {
    let redis = start_redis_with(&["--user", "alice", "on", ">alice-pw", "~*", "&*", "+@all"]);
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 5000, "seed": 5}));
    let p = redis.port;
    let c = store_client(
        &emu,
        &format!("redis://alice:alice-pw@127.0.0.1:{p}/2"),
        StoreOpts::default(),
    );
    let got = download_sink(&c, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    // The token is in database 2, under the app's key.
    let stored = redis_cli(
        &redis,
        &[
            "--user",
            "alice",
            "--pass",
            "alice-pw",
            "--no-auth-warning",
            "-n",
            "2",
            "GET",
            "wxmedia:token:corp:wxm-corp",
        ],
    );
    assert!(stored.contains("\"token\""), "{stored}");
    let wrong = store_client(
        &emu,
        &format!("redis://alice:wrong-pw@127.0.0.1:{p}/2"),
        StoreOpts {
            timeouts: QUICK,
            ..Default::default()
        },
    );
    expect_store_error(&wrong, &id, &format!("redis://alice@127.0.0.1:{p}/2"));
}

#[test]
fn a_read_only_replica_and_a_cluster_that_is_down_are_errors() {
    let master = start_redis();
    let replica = start_redis_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 5000, "seed": 6}));
    let opts = || StoreOpts {
        timeouts: QUICK,
        ..Default::default()
    };
    let c = store_client(&emu, &replica.url, opts());
    let msg = expect_store_error(&c, &id, &format!("{}/0", replica.url));
    assert!(msg.to_lowercase().contains("read only"), "{msg}");
    // A cluster node that serves no slot answers CLUSTERDOWN.
    let dir = tempdir("redis-cluster");
    let conf = dir.join("nodes.conf");
    let cluster = start_redis_with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        conf.to_str().expect("utf-8"),
    ]);
    let c = store_client(&emu, &cluster.url, opts());
    let msg = expect_store_error(&c, &id, &format!("{}/0", cluster.url));
    assert!(msg.contains("ClusterDown"), "{msg}");
    assert_eq!(stats(&emu)["token_fetches"].as_u64(), Some(0));
}

/// A cluster node that sends every key elsewhere: a server on loopback
/// that answers each command with a MOVED redirection.
#[test]
fn a_moved_redirection_is_an_error() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {
                    if conn.write_all(b"-MOVED 3999 127.0.0.1:7002\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 5000, "seed": 13}));
    let c = store_client(
        &emu,
        &format!("redis://127.0.0.1:{port}"),
        StoreOpts {
            timeouts: QUICK,
            ..Default::default()
        },
    );
    let msg = expect_store_error(&c, &id, &format!("redis://127.0.0.1:{port}/0"));
    assert!(msg.to_lowercase().contains("moved"), "{msg}");
    assert_eq!(stats(&emu)["token_fetches"].as_u64(), Some(0));
}

/// A CA and a leaf for 127.0.0.1 (made by the TLS tests' `pki`), as PEM
/// files: (ca, cert, key).
fn test_pki(dir: &std::path::Path) -> (String, String, String) {
    let p = crate::tls::pki(&["127.0.0.1"]);
    let write = |name: &str, pem: &str| {
        let p = dir.join(name);
        std::fs::write(&p, pem).expect("write pem");
        p.to_str().expect("utf-8").to_string()
    };
    (
        write("ca.pem", &p.ca_pem),
        write("cert.pem", &p.leaf_pem),
        write("key.pem", &p.key_pem),
    )
}

#[test]
fn tls_store_is_trusted_through_the_ca_file_only() {
    let dir = tempdir("redis-tls");
    let (ca, cert, key) = test_pki(&dir);
    let redis = start_redis_with(&[
        "--tls-port",
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "s3cret-pw",
    ]);
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 5000, "seed": 7}));
    let url = format!("rediss://:s3cret-pw@127.0.0.1:{}/1", redis.port);
    let trusted = store_client(
        &emu,
        &url,
        StoreOpts {
            ca_file: Some(ca.clone()),
            ..Default::default()
        },
    );
    let got = download_sink(&trusted, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    // Without the CA the built-in roots do not know the certificate.
    let untrusted = store_client(
        &emu,
        &url,
        StoreOpts {
            timeouts: QUICK,
            ..Default::default()
        },
    );
    let msg = expect_store_error(
        &untrusted,
        &id,
        &format!("rediss://127.0.0.1:{}/1", redis.port),
    );
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    // Plain RESP on the TLS port is no answer either.
    let plain = store_client(
        &emu,
        &format!("redis://:s3cret-pw@127.0.0.1:{}/1", redis.port),
        StoreOpts {
            timeouts: QUICK,
            ..Default::default()
        },
    );
    expect_store_error(&plain, &id, &format!("redis://127.0.0.1:{}/1", redis.port));
}

#[test]
fn a_store_killed_mid_run_fails_fast_unless_fallback_was_chosen() {
    let mut redis = start_redis();
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 5000, "seed": 8}));
    let strict = store_client(
        &emu,
        &redis.url,
        StoreOpts {
            timeouts: QUICK,
            ..Default::default()
        },
    );
    let lenient = store_client(
        &emu,
        &redis.url,
        StoreOpts {
            timeouts: QUICK,
            fallback: true,
            ..Default::default()
        },
    );
    for c in [&strict, &lenient] {
        let got = download_sink(c, &id, 0);
        assert_eq!(got.rc, 0, "{}", got.errmsg);
    }
    assert_eq!(stats(&emu)["token_fetches"].as_u64(), Some(1));
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    // The cached token still works: no store needed.
    assert_eq!(download_sink(&strict, &id, 0).rc, 0);
    // WeChat invalidates it: a new one must come through the store.
    admin(&emu, "POST", "/__admin/expire_token", json!({"all": true}));
    expect_store_error(&strict, &id, &format!("{}/0", redis.url));
    assert_eq!(fallbacks(&strict), 0);
    assert_eq!(stats(&emu)["token_fetches"].as_u64(), Some(1));
    let got = download_sink(&lenient, &id, 0);
    assert_eq!(got.rc, 0, "{}", got.errmsg);
    assert_eq!(got.data, want);
    assert_eq!(fallbacks(&lenient), 1, "the fallback is counted");
    assert_eq!(stats(&emu)["token_fetches"].as_u64(), Some(2));
}

#[test]
fn an_unreachable_or_silent_store_fails_within_its_timeout() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 5000, "seed": 9}));
    let port = free_port();
    let closed = store_client(
        &emu,
        &format!("redis://127.0.0.1:{port}"),
        StoreOpts::default(),
    );
    expect_store_error(&closed, &id, &format!("redis://127.0.0.1:{port}/0"));
    // Accepts connections, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let c = store_client(
        &emu,
        &format!("redis://:s3cret-pw@127.0.0.1:{port}/3"),
        StoreOpts {
            timeouts: Some((1000, 1000)),
            ..Default::default()
        },
    );
    let t0 = std::time::Instant::now();
    let msg = expect_store_error(&c, &id, &format!("redis://127.0.0.1:{port}/3"));
    // One timeout, not one per command of the connection's set-up.
    let took = t0.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(3),
        "{took:?}: {msg}"
    );
    assert!(msg.contains("no answer within 1000 ms"), "{msg}");
    assert_eq!(stats(&emu)["token_fetches"].as_u64(), Some(0));
    drop(silent);
}

#[test]
fn store_setters_validate() {
    // SAFETY: handles used on this thread and freed.
    unsafe {
        let cfg = wxm_config_new(1);
        let invalid = wxmedia::error::WXM_E_INVALID_ARG;
        for bad in [
            "http://nope",
            "redis://s3cret-pw@127.0.0.1",
            "redis://127.0.0.1/x",
            "rediss://127.0.0.1#insecure",
        ] {
            assert_eq!(
                wxm_config_set_token_store(cfg, cs(bad).as_ptr()),
                invalid,
                "{bad}"
            );
            let msg = text(wxm_last_errmsg()).unwrap_or_default();
            assert!(!msg.contains("s3cret-pw"), "{msg}");
        }
        assert_eq!(wxm_config_set_token_store_timeouts(cfg, 0, 5000), invalid);
        assert_eq!(wxm_config_set_token_store_timeouts(cfg, 5000, 0), invalid);
        assert_eq!(wxm_config_set_token_store_timeouts(cfg, 250, 250), 0);
        assert_eq!(wxm_config_set_token_store_fallback(cfg, 2), invalid);
        assert_eq!(wxm_config_set_token_store_fallback(cfg, 0), 0);
        let mut n = 0u64;
        assert_eq!(
            wxm_client_token_store_fallbacks(std::ptr::null(), &mut n),
            invalid
        );
        wxm_config_free(cfg);
    }
}

#[test]
fn a_cancel_is_seen_while_another_process_holds_the_lock() {
    let redis = start_redis();
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 5000, "seed": 10}));
    // "Another process" is fetching: it holds the lock for a minute.
    assert_eq!(
        redis_cli(
            &redis,
            &[
                "SET",
                "wxmedia:token-lock:corp:wxm-corp",
                "another-process",
                "PX",
                "60000"
            ]
        ),
        "OK"
    );
    let c = store_client(&emu, &redis.url, StoreOpts::default());
    let dir = tempdir("redis-cancel");
    let (rc, after_cancel) = to_path_cancelled_after(&c, &id, &dir.join("out"), 300);
    assert_eq!(rc, wxmedia::error::WXM_E_CANCELLED);
    assert!(
        after_cancel < std::time::Duration::from_secs(1),
        "returned {after_cancel:?} after the cancel"
    );
    assert!(!dir.join("out").exists());
    assert_eq!(stats(&emu)["token_fetches"].as_u64(), Some(0));
}

#[test]
fn the_wait_for_another_process_is_bounded() {
    let redis = start_redis();
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 5000, "seed": 11}));
    // A holder that keeps the lock past its TTL (a broken process or a
    // clock gone wrong): waiters give up after the TTL (15 s) plus one
    // command timeout, rather than waiting for ever.
    redis_cli(
        &redis,
        &[
            "SET",
            "wxmedia:token-lock:corp:wxm-corp",
            "stuck",
            "PX",
            "120000",
        ],
    );
    let c = store_client(
        &emu,
        &redis.url,
        StoreOpts {
            timeouts: Some((1000, 500)),
            ..Default::default()
        },
    );
    let t0 = std::time::Instant::now();
    let got = download_sink(&c, &id, 0);
    let took = t0.elapsed();
    assert_eq!(got.rc, wxmedia::error::WXM_E_TOKEN_STORE, "{}", got.errmsg);
    assert!(got.errmsg.contains("lock"), "{}", got.errmsg);
    assert!(
        took >= std::time::Duration::from_millis(15_000)
            && took < std::time::Duration::from_secs(25),
        "{took:?}"
    );
}
