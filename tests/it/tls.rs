//! TLS: a TLS-terminating proxy (rustls server, test CA and leaf made by
//! rcgen) in front of the emulator on loopback. Certificate verification is
//! on by default, so the connection is refused (WXM_E_TLS); with the test
//! CA given through `wxm_config_set_ca_file` it is accepted and the bytes
//! are identical. A leaf for another name is refused even with the CA.

use crate::support::{self, add_media, sha256_hex, start, ClientOpts, Platform, TOKEN};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wxmedia::error::*;

pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    /// The leaf and its key as PEM, for servers configured by file (Redis).
    pub(crate) leaf_pem: String,
    pub(crate) key_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

/// A CA, and a leaf it signs for `names` (DNS names or IP addresses).
pub(crate) fn pki(names: &[&str]) -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "wxmedia test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let mut leaf =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf cert");
    Pki {
        ca_pem: ca_cert.pem(),
        leaf_pem: leaf_cert.pem(),
        key_pem: leaf_key.serialize_pem(),
        leaf_der: leaf_cert.der().clone(),
        leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// Accepts TLS on 127.0.0.1 and pipes each connection to `upstream`.
pub(crate) struct TlsProxy {
    pub(crate) port: u16,
    stop: Arc<AtomicBool>,
    handshakes_failed: Arc<std::sync::atomic::AtomicUsize>,
}

impl TlsProxy {
    pub(crate) fn start(p: &Pki, upstream: std::net::SocketAddr) -> TlsProxy {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![p.leaf_der.clone()], p.leaf_key.clone_key())
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s2, f2) = (stop.clone(), failed.clone());
        std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let Ok((tcp, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let (config, f3) = (config.clone(), f2.clone());
                std::thread::spawn(move || serve(tcp, config, upstream, &f3));
            }
        });
        TlsProxy {
            port,
            stop,
            handshakes_failed: failed,
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    upstream: std::net::SocketAddr,
    failed: &std::sync::atomic::AtomicUsize,
) {
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(20)));
    let Ok(mut conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = up.set_read_timeout(Some(Duration::from_millis(20)));
    pipe(&mut tcp, &mut conn, &mut up);
    // A client that refuses the certificate drops the connection mid-handshake.
    if conn.is_handshaking() {
        failed.fetch_add(1, Ordering::SeqCst);
    }
}

fn pipe(tcp: &mut TcpStream, conn: &mut rustls::ServerConnection, up: &mut TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        // Client → TLS → upstream.
        match conn.read_tls(tcp) {
            Ok(0) => return,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    // The client refused our certificate (or spoke garbage).
                    let _ = conn.write_tls(tcp);
                    return;
                }
                loop {
                    match conn.reader().read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if up.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
        // Upstream → TLS → client.
        match up.read(&mut buf) {
            Ok(0) => {
                conn.send_close_notify();
                let _ = conn.write_tls(tcp);
                return;
            }
            Ok(n) => {
                // rustls buffers a bounded amount of plaintext: hand it over
                // piece by piece, sending the records in between.
                let mut off = 0;
                while off < n {
                    let w = conn.writer().write(&buf[off..n]).unwrap_or(0);
                    off += w;
                    while conn.wants_write() {
                        if conn.write_tls(tcp).is_err() {
                            return;
                        }
                    }
                    if w == 0 {
                        return;
                    }
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
        while conn.wants_write() {
            if conn.write_tls(tcp).is_err() {
                return;
            }
        }
    }
}

#[test]
fn verification_is_on_by_default_and_a_private_ca_is_honoured() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(
        &emu,
        json!({"size": 300_001, "seed": 12, "encrypted": true}),
    );
    let p = pki(&["localhost", "127.0.0.1"]);
    let proxy = TlsProxy::start(&p, emu.addr());
    let dir = std::env::temp_dir().join(format!("wxmedia-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, &p.ca_pem).expect("write CA");

    for host in ["localhost", "127.0.0.1"] {
        let base = format!("https://{host}:{}", proxy.port);
        // Default: the web PKI roots, which do not know the test CA.
        let mut o = ClientOpts::at(&base);
        o.token = Some(TOKEN.to_string());
        o.attempts = 3;
        let c = support::new_client(&o);
        let failed_before = proxy.handshakes_failed.load(Ordering::SeqCst);
        let out = support::download_sink(&c, &id, 0);
        assert_eq!(out.rc, WXM_E_TLS, "{host}: {} {}", out.rc, out.errmsg);
        assert!(out.data.is_empty());
        assert!(!out.errmsg.contains(TOKEN) && !out.last_errmsg.contains(TOKEN));
        // The proxy's side of the refused handshake (it may lag a little).
        let t0 = std::time::Instant::now();
        while proxy.handshakes_failed.load(Ordering::SeqCst) == failed_before
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            proxy.handshakes_failed.load(Ordering::SeqCst) > failed_before,
            "the proxy saw no refused handshake"
        );
        let target = dir.join("refused.bin");
        let out = support::download_path(&c, &id, &target);
        assert_eq!(out.rc, WXM_E_TLS);
        assert!(!target.exists());

        // With the test CA: accepted, identical bytes, in parallel too.
        for parallelism in [1, 3] {
            let mut o = ClientOpts::at(&base);
            o.token = Some(TOKEN.to_string());
            o.chunk = 64 * 1024;
            o.parallelism = parallelism;
            o.ca_file = Some(ca_path.to_str().expect("utf-8").to_string());
            let c = support::new_client(&o);
            let out = support::download_sink(&c, &id, 0);
            assert_eq!(out.rc, 0, "{host} ×{parallelism}: {}", out.errmsg);
            assert_eq!(sha256_hex(&out.data), sha256_hex(&want));
            let target = dir.join(format!("ok-{host}-{parallelism}.bin"));
            let out = support::download_path(&c, &id, &target);
            assert_eq!(out.rc, 0, "{}", out.errmsg);
            assert_eq!(sha256_hex(&out.data), sha256_hex(&want));
        }
    }

    // The CA is trusted, but the leaf names another host: refused.
    let other = pki(&["not-this-host.example"]);
    let wrong = TlsProxy::start(&other, emu.addr());
    std::fs::write(dir.join("other-ca.pem"), &other.ca_pem).expect("write");
    let mut o = ClientOpts::at(&format!("https://127.0.0.1:{}", wrong.port));
    o.ca_file = Some(
        dir.join("other-ca.pem")
            .to_str()
            .expect("utf-8")
            .to_string(),
    );
    let c = support::new_client(&o);
    let out = support::download_sink(&c, &id, 0);
    assert_eq!(out.rc, WXM_E_TLS, "{}", out.errmsg);

    // A CA file that holds no certificate is refused when the client is made.
    std::fs::write(dir.join("empty.pem"), "not a certificate\n").expect("write");
    let mut o = ClientOpts::at(&format!("https://127.0.0.1:{}", proxy.port));
    o.ca_file = Some(dir.join("empty.pem").to_str().expect("utf-8").to_string());
    assert_eq!(
        support::try_client(&o).err().map(|e| e.0),
        Some(WXM_E_INVALID_ARG)
    );
    let _ = std::fs::remove_dir_all(dir);
}
