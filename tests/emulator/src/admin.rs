//! The admin API (`/__admin/...`): register media, script faults, read stats,
//! move the clock, manage tokens. JSON in and out; see docs/CONTRACT.md.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::body::EmuBody;
use crate::state::{self, Fault, FaultKind, Media, Shared, Source, TokenState, ENDPOINTS};
use crate::util;
use crate::wechat::{set_header, Resp};

/// Admin bodies carry at most a literal media in base64.
const MAX_ADMIN_BODY: usize = 128 * 1024 * 1024;

fn reply(status: StatusCode, v: Value) -> Resp {
    let mut r = Response::new(EmuBody::bytes(v.to_string()));
    *r.status_mut() = status;
    set_header(&mut r, "content-type", "application/json");
    r
}

fn ok(v: Value) -> Resp {
    reply(StatusCode::OK, v)
}

fn bad(msg: impl std::fmt::Display) -> Resp {
    reply(StatusCode::BAD_REQUEST, json!({"error": msg.to_string()}))
}

async fn read_json(req: Request<Incoming>) -> Result<Value, Resp> {
    let body = http_body_util::Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
        .map_err(|e| bad(format!("reading body: {e}")))?
        .to_bytes();
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| bad(format!("bad JSON: {e}")))?;
    if !v.is_object() {
        return Err(bad("expected a JSON object"));
    }
    Ok(v)
}

pub async fn handle(req: Request<Incoming>, sh: Arc<Shared>) -> Resp {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let method = req.method().clone();
    let sub = path.strip_prefix("/__admin").unwrap_or("");
    match (method, sub) {
        (Method::POST, "/media") => match read_json(req).await {
            Ok(v) => add_media(sh, v).await,
            Err(r) => r,
        },
        (Method::GET, p) if p.starts_with("/media/") => {
            let id = String::from_utf8_lossy(&util::pct_decode(&p["/media/".len()..])).into_owned();
            media_info(&sh, &id).await
        }
        (Method::DELETE, p) if p.starts_with("/media/") => {
            // Lets long runs (the benchmarks' uploads) give memory back.
            let id = String::from_utf8_lossy(&util::pct_decode(&p["/media/".len()..])).into_owned();
            let removed = sh.lock().media.remove(&id);
            match removed {
                Some(m) => {
                    // An upload's bytes live in the emulator's private
                    // directory (tmpfs in the benchmarks): give them back
                    // too. Files the media was registered from are the
                    // caller's and stay.
                    if let Source::File(path) = &m.source {
                        if path.starts_with(&sh.upload_dir) {
                            let _ = std::fs::remove_file(path);
                        }
                    }
                    ok(json!({"deleted": id}))
                }
                None => reply(StatusCode::NOT_FOUND, json!({"error": "unknown media"})),
            }
        }
        (Method::POST, "/faults") => match read_json(req).await {
            Ok(v) => add_fault(&sh, v),
            Err(r) => r,
        },
        (Method::GET, "/faults") => {
            let inner = sh.lock();
            let list: Vec<Value> = inner
                .faults
                .iter()
                .map(|f| json!({"kind": format!("{:?}", f.kind), "remaining": f.remaining, "endpoint": f.endpoint, "media_id": f.media_id}))
                .collect();
            ok(json!({ "faults": list }))
        }
        (Method::GET, "/stats") => stats(&sh),
        (Method::POST, "/reset") => {
            sh.reset_stats();
            ok(json!({"ok": true}))
        }
        (Method::POST, "/clock") => match read_json(req).await {
            Ok(v) => {
                let secs = v.get("advance_secs").and_then(Value::as_u64).unwrap_or(0);
                let now = sh.advance_clock(secs);
                ok(json!({"ok": true, "now": now}))
            }
            Err(r) => r,
        },
        (Method::GET, "/clock") => ok(json!({"now": sh.now()})),
        (Method::POST, "/tokens") => match read_json(req).await {
            Ok(v) => {
                let Some(t) = v
                    .get("token")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                else {
                    return bad("\"token\" (a non-empty string) is required");
                };
                let ttl = v.get("ttl_secs").and_then(Value::as_u64);
                let now = sh.now();
                sh.lock().tokens.insert(
                    t.to_string(),
                    TokenState {
                        expires_at: ttl.map(|s| now.saturating_add(s)),
                        expired: false,
                    },
                );
                ok(json!({"ok": true, "token": t}))
            }
            Err(r) => r,
        },
        (Method::POST, "/expire_token") => match read_json(req).await {
            Ok(v) => {
                let all = v.get("all").and_then(Value::as_bool).unwrap_or(false);
                let mut inner = sh.lock();
                let mut n = 0;
                if all {
                    for t in inner.tokens.values_mut() {
                        t.expired = true;
                        n += 1;
                    }
                } else if let Some(t) = v.get("token").and_then(Value::as_str) {
                    if let Some(st) = inner.tokens.get_mut(t) {
                        st.expired = true;
                        n += 1;
                    }
                } else {
                    return bad("give \"token\" or \"all\": true");
                }
                ok(json!({"ok": true, "expired": n}))
            }
            Err(r) => r,
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"error": "unknown admin endpoint"}),
        ),
    }
}

fn media_json(m: &Media, sha256: &str) -> Value {
    json!({
        "media_id": m.id,
        "size": m.size,
        "sha256": sha256,
        "filename": m.filename,
        "content_type": m.content_type,
        "type": m.kind,
        "created_at": m.created_at,
        "encrypted": m.encrypted,
        "async": m.is_async,
        "video": m.video,
    })
}

async fn media_info(sh: &Shared, id: &str) -> Resp {
    let media = sh.lock().media.get(id).cloned();
    let Some(m) = media else {
        return reply(StatusCode::NOT_FOUND, json!({"error": "unknown media"}));
    };
    match state::media_sha256(&m).await {
        Ok(sha) => ok(media_json(&m, &sha)),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": format!("cannot read the media's bytes: {e}")}),
        ),
    }
}

async fn add_media(sh: Arc<Shared>, v: Value) -> Resp {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let b = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let id = s("media_id")
        .filter(|x| !x.is_empty())
        .unwrap_or_else(|| sh.new_media_id());
    let video = b("video");
    let (source, size, sha, default_name) = if let Some(b64) = s("data_b64") {
        let data = match base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64.trim()))
        {
            Ok(d) => d,
            Err(e) => return bad(format!("data_b64: {e}")),
        };
        let sha = state::sha256_bytes(&data);
        let len = data.len() as u64;
        (Source::Bytes(Bytes::from(data)), len, sha, None)
    } else if let Some(p) = s("path") {
        let path = PathBuf::from(&p);
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            _ => return bad(format!("path {p:?} is not a readable file")),
        };
        let p2 = path.clone();
        let sha = match tokio::task::spawn_blocking(move || state::sha256_file(&p2)).await {
            Ok(Ok(h)) => h,
            _ => return bad(format!("cannot read {p:?}")),
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        (Source::File(path), meta.len(), sha, name)
    } else if let Some(size) = v.get("size").and_then(Value::as_u64) {
        let seed = v.get("seed").and_then(Value::as_u64).unwrap_or(0);
        // Hashing a big generated media takes a while: keep it off the reactor.
        let sha =
            match tokio::task::spawn_blocking(move || state::sha256_generated(seed, size)).await {
                Ok(h) => h,
                Err(_) => return bad("hashing failed"),
            };
        (Source::Generated { seed }, size, sha, None)
    } else {
        return bad("give one of \"size\" (+\"seed\"), \"data_b64\" or \"path\"");
    };
    let kind = s("kind").unwrap_or_else(|| {
        if video {
            "video".to_string()
        } else {
            s("filename")
                .or(default_name.clone())
                .map(|n| state::kind_for_name(&n).to_string())
                .unwrap_or_else(|| "file".to_string())
        }
    });
    let filename = s("filename").or(default_name).unwrap_or_else(|| {
        let ext = match kind.as_str() {
            "image" | "thumb" => "jpg",
            "voice" => "amr",
            "video" => "mp4",
            _ => "bin",
        };
        format!("{id}.{ext}")
    });
    let content_type =
        s("content_type").unwrap_or_else(|| util::content_type_for(&filename).to_string());
    let media = Media {
        id: id.clone(),
        filename,
        content_type,
        kind,
        size,
        sha256: std::sync::OnceLock::from(sha.clone()),
        source,
        encrypted: b("encrypted"),
        is_async: b("async"),
        video,
        created_at: sh.now(),
    };
    let out = media_json(&media, &sha);
    sh.lock().media.insert(id, Arc::new(media));
    ok(out)
}

fn add_fault(sh: &Shared, v: Value) -> Resp {
    let Some(kind_s) = v.get("kind").and_then(Value::as_str) else {
        return bad("\"kind\" is required");
    };
    let Some(kind) = FaultKind::parse(kind_s) else {
        return bad(format!("unknown fault kind {kind_s:?}"));
    };
    let endpoint = v
        .get("endpoint")
        .and_then(Value::as_str)
        .unwrap_or("media/get")
        .to_string();
    if endpoint != "any" && !ENDPOINTS.contains(&endpoint.as_str()) {
        return bad(format!("unknown endpoint {endpoint:?}"));
    }
    let count = v.get("count").and_then(Value::as_u64).unwrap_or(1);
    if count == 0 {
        return ok(json!({"ok": true, "queued": 0}));
    }
    let fault = Fault {
        kind,
        remaining: count.min(u32::MAX as u64) as u32,
        endpoint,
        media_id: v
            .get("media_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        after_bytes: v.get("after_bytes").and_then(Value::as_u64),
        ms: v.get("ms").and_then(Value::as_u64).unwrap_or(0),
        errcode: v.get("errcode").and_then(Value::as_i64).unwrap_or(-1),
        status: v
            .get("status")
            .and_then(Value::as_u64)
            .map(|s| s.min(999) as u16)
            .unwrap_or(500),
        bytes_per_sec: v
            .get("bytes_per_sec")
            .and_then(Value::as_u64)
            .unwrap_or(1024 * 1024),
    };
    sh.lock().faults.push(fault);
    ok(json!({"ok": true, "queued": count}))
}

fn stats(sh: &Shared) -> Resp {
    let inner = sh.lock();
    let st = &inner.stats;
    // Every endpoint is listed, 0 when never asked, so readers need no defaults.
    let mut requests: std::collections::BTreeMap<String, u64> =
        ENDPOINTS.iter().map(|e| (e.to_string(), 0)).collect();
    requests.extend(st.requests.iter().map(|(k, v)| (k.clone(), *v)));
    ok(json!({
        "requests": requests,
        "media_requests": st.media_requests,
        "ranges": st.ranges,
        "bytes_served": sh.bytes_served.load(Ordering::Relaxed),
        "token_fetches": st.token_fetches,
        "uploads": st.uploads,
        "faults_fired": st.faults_fired,
        "url_fetches": st.url_fetches,
        "jobs": st.jobs,
        "images": st.images,
        "max_concurrent_connections": sh.conn_max.load(Ordering::SeqCst),
        "current_connections": sh.conn_current.load(Ordering::SeqCst),
        "connections_opened": sh.conn_opened.load(Ordering::SeqCst),
    }))
}
