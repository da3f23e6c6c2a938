//! The WeChat endpoints: tokens, media/get (+jssdk, video), media/upload,
//! media/uploadimg (+ the `/__img/` URLs it hands out). The async upload is in
//! `asyncup.rs`.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::body::{BodyPlan, BodySource, ConnCtl, EmuBody};
use crate::state::{Fault, FaultKind, Media, RangeRecord, Shared, Source, MAX_CHUNK};
use crate::util::{self, query_get};
use crate::Platform;

pub type Resp = Response<EmuBody>;

/// Sets a header, skipping values that cannot be a header (never panics).
pub fn set_header(r: &mut Resp, name: &'static str, value: impl AsRef<[u8]>) {
    if let Ok(v) = HeaderValue::from_bytes(value.as_ref()) {
        r.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

pub fn text(status: StatusCode, msg: &str) -> Resp {
    let mut r = Response::new(EmuBody::bytes(format!("{msg}\n")));
    *r.status_mut() = status;
    set_header(&mut r, "content-type", "text/plain; charset=utf-8");
    r
}

fn errmsg_text(code: i64, platform: Platform) -> &'static str {
    let wecom = platform.is_wecom_like();
    match code {
        -1 => {
            if wecom {
                "system busy"
            } else {
                "system error"
            }
        }
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40004 => "invalid media type",
        40005 => "invalid file type",
        40006 => "invalid file size",
        40007 => "invalid media_id",
        40009 => "invalid image size",
        40010 => "invalid voice size",
        40011 => "invalid video size",
        40012 => "invalid thumb size",
        40013 => {
            if wecom {
                "invalid corpid"
            } else {
                "invalid appid"
            }
        }
        40014 => "invalid access_token",
        40058 => "invalid Request Parameter, chunk must be 16-byte aligned for this media",
        40125 => "invalid appsecret",
        41001 => "access_token missing",
        41002 => {
            if wecom {
                "corpid missing"
            } else {
                "appid missing"
            }
        }
        41004 => {
            if wecom {
                "corpsecret missing"
            } else {
                "appsecret missing"
            }
        }
        41005 => "media data missing",
        41006 => "media_id missing",
        42001 => "access_token expired",
        44001 => "empty media data",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit, must slower, retry next minute",
        45033 => "api concurrent out of limit",
        45001 => "media size out of limit",
        47001 => "data format error",
        48001 => "api unauthorized",
        830002 => "file size too large, please use Range to download in chunks of at most 20MB",
        _ => "emulated error",
    }
}

/// An API error the way WeChat sends it: HTTP 200 and a JSON body, with
/// WeCom's Content-Type and Error-Code/Error-Msg headers, or OA's text/plain.
pub fn errcode(sh: &Shared, code: i64) -> Resp {
    errcode_msg(sh, code, errmsg_text(code, sh.platform))
}

/// As `errcode`, with this text at the start of errmsg.
pub fn errcode_msg(sh: &Shared, code: i64, text: &str) -> Resp {
    let hint = util::random_token(14);
    let msg = if sh.platform.is_wecom_like() {
        format!(
            "{text}, hint: [{}_{hint}], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={code}",
            sh.now()
        )
    } else {
        format!(
            "{text} rid: {:08x}-{:08x}-{hint}",
            util::random_u64() as u32,
            util::random_u64() as u32
        )
    };
    let body = json!({"errcode": code, "errmsg": msg}).to_string();
    let mut r = Response::new(EmuBody::bytes(body));
    if sh.platform.is_wecom_like() {
        set_header(&mut r, "content-type", "application/json; charset=UTF-8");
        set_header(&mut r, "error-code", code.to_string());
        set_header(&mut r, "error-msg", &msg);
    } else {
        set_header(&mut r, "content-type", "text/plain");
    }
    r
}

/// A successful JSON answer.
pub fn json_ok(sh: &Shared, v: Value) -> Resp {
    let mut r = Response::new(EmuBody::bytes(v.to_string()));
    let ct = if sh.platform.is_wecom_like() {
        "application/json; charset=UTF-8"
    } else {
        "application/json; encoding=utf-8"
    };
    set_header(&mut r, "content-type", ct);
    r
}

/// Reads and discards a request body, so an early answer does not leave
/// unread bytes that would turn the close into a RST.
pub async fn drain(body: Incoming) {
    let mut body = body;
    while let Some(f) = body.frame().await {
        if f.is_err() {
            break;
        }
    }
}

pub async fn route(req: Request<Incoming>, sh: Arc<Shared>, ctl: Arc<ConnCtl>) -> Resp {
    let path = req.uri().path().to_string();
    if path == "/__admin" || path.starts_with("/__admin/") {
        return crate::admin::handle(req, sh).await;
    }
    let endpoint = match path.as_str() {
        "/cgi-bin/gettoken" => "gettoken",
        "/cgi-bin/token" => "token",
        "/cgi-bin/stable_token" => "stable_token",
        "/cgi-bin/media/upload" => "media/upload",
        "/cgi-bin/media/get" => "media/get",
        "/cgi-bin/media/get/jssdk" => "media/get/jssdk",
        "/cgi-bin/media/upload_by_url" => "media/upload_by_url",
        "/cgi-bin/media/get_upload_by_url_result" => "media/get_upload_by_url_result",
        "/cgi-bin/media/uploadimg" => "media/uploadimg",
        p if p.starts_with("/__video/") => "video",
        p if p.starts_with("/__img/") => "img",
        _ => {
            drain(req.into_body()).await;
            return text(StatusCode::NOT_FOUND, "not found");
        }
    };
    if !ctl.counted.swap(true, std::sync::atomic::Ordering::SeqCst) {
        sh.conn_opened();
    }
    let q = util::parse_query(req.uri().query());
    let media_id: Option<String> = match endpoint {
        "video" => Some(
            String::from_utf8_lossy(&util::pct_decode(&path["/__video/".len()..])).into_owned(),
        ),
        "media/get" | "media/get/jssdk" => query_get(&q, "media_id").map(str::to_string),
        _ => None,
    };
    let range_hdr: Option<String> = req
        .headers()
        .get(hyper::header::RANGE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let record = media_id.as_ref().map(|id| {
        let (start, end) = match range_hdr.as_deref().and_then(util::parse_range) {
            Some(util::RangeSpec::From { start, end }) => (Some(start), end),
            _ => (None, None),
        };
        RangeRecord {
            media_id: id.clone(),
            header: range_hdr.clone(),
            start,
            end,
        }
    });
    sh.count_request(endpoint, media_id.as_deref(), record);
    let fault = sh.take_fault(endpoint, media_id.as_deref());
    let token = query_get(&q, "access_token").map(str::to_string);

    if let Some(f) = &fault {
        match f.kind {
            FaultKind::SlowHeaders => tokio::time::sleep(Duration::from_millis(f.ms)).await,
            FaultKind::Errcode => {
                drain(req.into_body()).await;
                return errcode(&sh, f.errcode);
            }
            FaultKind::HttpStatus => {
                drain(req.into_body()).await;
                let st =
                    StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return text(st, &format!("emulated HTTP {}", st.as_u16()));
            }
            _ => {}
        }
    }

    let resp = match endpoint {
        "gettoken" => {
            drain(req.into_body()).await;
            gettoken(&sh, &q)
        }
        "token" => {
            drain(req.into_body()).await;
            oa_token(&sh, &q)
        }
        "stable_token" => stable_token(&sh, req).await,
        "media/upload" => upload(&sh, &q, req).await,
        "media/uploadimg" => uploadimg(&sh, &q, req).await,
        "media/upload_by_url" => crate::asyncup::upload_by_url(&sh, &q, req).await,
        "media/get_upload_by_url_result" => crate::asyncup::result(&sh, &q, req).await,
        "img" => {
            drain(req.into_body()).await;
            let name =
                String::from_utf8_lossy(&util::pct_decode(&path["/__img/".len()..])).into_owned();
            let img = sh.lock().images.get(&name).cloned();
            match img {
                Some(m) => serve_media(&sh, &m, range_hdr.as_deref(), fault.as_ref(), "img"),
                None => text(StatusCode::NOT_FOUND, "no such image"),
            }
        }
        _ => {
            drain(req.into_body()).await;
            get(
                &sh,
                endpoint,
                token.as_deref(),
                media_id.as_deref(),
                range_hdr.as_deref(),
                fault.as_ref(),
            )
        }
    };
    if fault
        .as_ref()
        .is_some_and(|f| f.kind == FaultKind::DropAfterBody)
    {
        // The request was read and acted on; the answer never leaves.
        ctl.aborted.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    apply_body_faults(resp, fault.as_ref(), token, sh, ctl)
}

/// Turns a fault that acts on the body into the body's plan.
fn apply_body_faults(
    resp: Resp,
    fault: Option<&Fault>,
    token: Option<String>,
    sh: Arc<Shared>,
    ctl: Arc<ConnCtl>,
) -> Resp {
    let Some(f) = fault else { return resp };
    let (parts, body) = resp.into_parts();
    let len = body.len();
    let mut plan = BodyPlan::default();
    match f.kind {
        FaultKind::Reset => plan.reset_at = Some(f.after_bytes.unwrap_or(0)),
        FaultKind::Stall => {
            plan.stall = Some((f.after_bytes.unwrap_or(0), Duration::from_millis(f.ms)))
        }
        FaultKind::ShortBody => {
            let fewer = f.after_bytes.unwrap_or(len - len / 2);
            plan.close_at = Some(len.saturating_sub(fewer));
        }
        FaultKind::TokenExpire => {
            plan.close_at = Some(f.after_bytes.unwrap_or(0));
            plan.expire_token = token;
        }
        FaultKind::Throttle => plan.bytes_per_sec = Some(f.bytes_per_sec.max(1)),
        _ => {}
    }
    Response::from_parts(parts, body.with_plan(plan, ctl, sh))
}

fn gettoken(sh: &Shared, q: &[(String, String)]) -> Resp {
    let corpid = query_get(q, "corpid").unwrap_or("");
    let secret = query_get(q, "corpsecret").unwrap_or("");
    if corpid.is_empty() {
        return errcode(sh, 41002);
    }
    if corpid != sh.corpid {
        return errcode(sh, 40013);
    }
    if secret.is_empty() {
        return errcode(sh, 41004);
    }
    if secret != sh.secret {
        return errcode(sh, 40001);
    }
    let mut inner = sh.lock();
    // WeCom hands out the same token while it is valid.
    let tok = match inner.gettoken_current.clone() {
        Some(t) if sh.token_valid(&inner, &t) => t,
        _ => {
            let t = sh.issue_token(&mut inner);
            inner.gettoken_current = Some(t.clone());
            t
        }
    };
    let expires_in = sh.token_remaining(&inner, &tok);
    drop(inner);
    json_ok(
        sh,
        json!({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": expires_in}),
    )
}

fn check_app(sh: &Shared, grant: Option<&str>, appid: &str, secret: &str) -> Result<(), i64> {
    if grant != Some("client_credential") {
        return Err(40002);
    }
    if appid.is_empty() {
        return Err(41002);
    }
    if appid != sh.corpid {
        return Err(40013);
    }
    if secret.is_empty() {
        return Err(41004);
    }
    if secret != sh.secret {
        return Err(40001);
    }
    Ok(())
}

fn oa_token(sh: &Shared, q: &[(String, String)]) -> Resp {
    if let Err(c) = check_app(
        sh,
        query_get(q, "grant_type"),
        query_get(q, "appid").unwrap_or(""),
        query_get(q, "secret").unwrap_or(""),
    ) {
        return errcode(sh, c);
    }
    let mut inner = sh.lock();
    let tok = sh.issue_token(&mut inner);
    drop(inner);
    json_ok(sh, json!({"access_token": tok, "expires_in": sh.token_ttl}))
}

async fn stable_token(sh: &Shared, req: Request<Incoming>) -> Resp {
    let body = match http_body_util::Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return errcode(sh, 47001),
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return errcode(sh, 47001),
    };
    if let Err(c) = check_app(
        sh,
        v.get("grant_type").and_then(Value::as_str),
        v.get("appid").and_then(Value::as_str).unwrap_or(""),
        v.get("secret").and_then(Value::as_str).unwrap_or(""),
    ) {
        return errcode(sh, c);
    }
    let force = v
        .get("force_refresh")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut inner = sh.lock();
    let tok = match inner.stable_current.clone() {
        Some(t) if !force && sh.token_valid(&inner, &t) => t,
        _ => {
            let t = sh.issue_token(&mut inner);
            inner.stable_current = Some(t.clone());
            t
        }
    };
    let expires_in = sh.token_remaining(&inner, &tok);
    drop(inner);
    json_ok(sh, json!({"access_token": tok, "expires_in": expires_in}))
}

fn get(
    sh: &Arc<Shared>,
    endpoint: &str,
    token: Option<&str>,
    media_id: Option<&str>,
    range: Option<&str>,
    fault: Option<&Fault>,
) -> Resp {
    if endpoint != "video" {
        if let Err(c) = sh.check_token(token) {
            return errcode(sh, c);
        }
    }
    let id = match media_id {
        Some(id) if !id.is_empty() => id,
        _ => return errcode(sh, 41006),
    };
    let Some(m) = sh.media(id) else {
        if endpoint == "video" {
            return text(StatusCode::NOT_FOUND, "no such video");
        }
        return errcode(sh, 40007);
    };
    if endpoint == "media/get" && m.video && !sh.platform.is_wecom_like() {
        let url = format!("http://{}/__video/{}", sh.addr, util::pct_encode(&m.id));
        return json_ok(sh, json!({ "video_url": url }));
    }
    serve_media(sh, &m, range, fault, endpoint)
}

fn open_source(m: &Media) -> std::io::Result<BodySource> {
    Ok(match &m.source {
        Source::Generated { seed } => BodySource::Generated { seed: *seed },
        Source::Bytes(b) => BodySource::Bytes(b.clone()),
        Source::File(p) => BodySource::File(std::fs::File::open(p)?),
    })
}

fn serve_media(
    sh: &Arc<Shared>,
    m: &Media,
    range: Option<&str>,
    fault: Option<&Fault>,
    endpoint: &str,
) -> Resp {
    let jssdk = endpoint == "media/get/jssdk";
    // The video_url target and uploadimg's URLs are plain CDN downloads:
    // no WeChat chunk rules (and images come without Content-Disposition).
    let cdn = endpoint == "video" || endpoint == "img";
    let img = endpoint == "img";
    let kind = fault.map(|f| f.kind);
    let ignore = kind == Some(FaultKind::IgnoreRange);
    let spec = if ignore {
        None
    } else {
        range.and_then(util::parse_range)
    };
    let size = m.size;
    let src = match open_source(m) {
        Ok(s) => s,
        Err(_) => return errcode(sh, -1),
    };
    let (ctype, fname) = if jssdk {
        ("voice/speex".to_string(), format!("{}.speex", m.id))
    } else {
        (m.content_type.clone(), m.filename.clone())
    };
    let finish = |mut r: Resp| {
        set_header(&mut r, "content-type", &ctype);
        if !img {
            set_header(
                &mut r,
                "content-disposition",
                util::content_disposition(&fname),
            );
        }
        set_header(&mut r, "cache-control", "no-cache, must-revalidate");
        set_header(&mut r, "accept-ranges", "bytes");
        r
    };
    match spec {
        Some(spec) => {
            let Some((s, e)) = util::resolve_range(spec, size) else {
                let mut r = Response::new(EmuBody::empty());
                *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                set_header(&mut r, "content-range", format!("bytes */{size}"));
                set_header(&mut r, "content-length", "0");
                return r;
            };
            let len = e - s + 1;
            if len > MAX_CHUNK && !cdn {
                return errcode(sh, 830002);
            }
            // Encrypted storage is decrypted in 16-byte blocks: a chunk must
            // start on a block and span whole blocks, except the file's tail.
            if m.encrypted && !cdn && (s % 16 != 0 || (len % 16 != 0 && e != size - 1)) {
                return errcode(sh, 40058);
            }
            let (cs, ce) = if kind == Some(FaultKind::WrongContentRange) {
                (s + 16, e + 16)
            } else {
                (s, e)
            };
            let mut r = finish(Response::new(
                EmuBody::new(src, s, e + 1).counting(sh.clone()),
            ));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            set_header(&mut r, "content-range", format!("bytes {cs}-{ce}/{size}"));
            set_header(&mut r, "content-length", len.to_string());
            r
        }
        None => {
            if size > MAX_CHUNK && !ignore && !cdn {
                return errcode(sh, 830002);
            }
            let mut r = finish(Response::new(
                EmuBody::new(src, 0, size).counting(sh.clone()),
            ));
            set_header(&mut r, "content-length", size.to_string());
            r
        }
    }
}

/// Upload types a platform accepts.
fn types_for(p: Platform) -> &'static [&'static str] {
    match p {
        Platform::WeCom | Platform::Kf => &["image", "voice", "video", "file"],
        Platform::Official => &["image", "voice", "video", "thumb"],
        Platform::MiniProgram => &["image"],
    }
}

/// Extensions accepted for a type; None = any (WeCom `file`).
fn exts_for(p: Platform, ty: &str) -> Option<&'static [&'static str]> {
    let wecom = p.is_wecom_like();
    Some(match ty {
        "image" if wecom => &["jpg", "jpeg", "png"],
        "image" => &["png", "jpeg", "jpg", "gif"],
        "voice" if wecom => &["amr"],
        "voice" => &["amr", "mp3"],
        "video" => &["mp4"],
        "thumb" => &["jpg", "jpeg"],
        _ => return None,
    })
}

fn too_large_code(ty: &str) -> i64 {
    match ty {
        "image" => 40009,
        "voice" => 40010,
        "video" => 40011,
        "thumb" => 40012,
        _ => 40006,
    }
}

fn missing_media_code(p: Platform) -> i64 {
    if p.is_wecom_like() {
        44001
    } else {
        41005
    }
}

struct Stored {
    path: std::path::PathBuf,
    filename: String,
    size: u64,
    /// The file name's extension, lower case.
    ext: Option<String>,
}

/// What a received file part must satisfy.
struct Rules {
    /// Allowed extensions (magic bytes checked too); None = any.
    exts: Option<&'static [&'static str]>,
    limit: u64,
    /// errcode when over `limit`.
    too_large: i64,
}

/// Where an upload named `filename` with this id is stored: in `--media DIR`
/// with `--store-uploads`, else in the private temp dir.
pub fn upload_path(sh: &Shared, filename: &str, id: &str) -> std::path::PathBuf {
    match (&sh.media_dir, sh.store_uploads) {
        (Some(dir), true) => {
            let mut p = dir.join(util::sanitize_file_name(filename));
            if p.exists() {
                p = dir.join(format!("{id}-{}", util::sanitize_file_name(filename)));
            }
            p
        }
        _ => sh.upload_dir.join(id),
    }
}

async fn upload(sh: &Arc<Shared>, q: &[(String, String)], req: Request<Incoming>) -> Resp {
    if let Err(c) = sh.check_token(query_get(q, "access_token")) {
        drain(req.into_body()).await;
        return errcode(sh, c);
    }
    let ty = query_get(q, "type").unwrap_or("").to_ascii_lowercase();
    if !types_for(sh.platform).contains(&ty.as_str()) {
        drain(req.into_body()).await;
        return errcode(sh, 40004);
    }
    let boundary = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let Some(boundary) = boundary else {
        drain(req.into_body()).await;
        return errcode(sh, missing_media_code(sh.platform));
    };
    let id = sh.new_media_id();
    let stream = http_body_util::BodyDataStream::new(req.into_body());
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut result: Option<Result<Stored, i64>> = None;
    loop {
        match mp.next_field().await {
            Ok(Some(mut field)) => {
                let disp = field
                    .headers()
                    .get(hyper::header::CONTENT_DISPOSITION)
                    .map(|v| util::parse_part_disposition(v.as_bytes()))
                    .unwrap_or_default();
                if result.is_none() && disp.name.as_deref() == Some("media") {
                    let rules = Rules {
                        exts: exts_for(sh.platform, &ty),
                        limit: sh.limit(&ty),
                        too_large: too_large_code(&ty),
                    };
                    let path = upload_path(sh, &part_filename(&disp), &id);
                    result = Some(receive_media(sh, &mut field, &disp, &rules, path).await);
                }
                // Other parts (and extra media parts) are skipped by next_field.
            }
            Ok(None) => break,
            // A malformed tail after a complete media part still uploads;
            // the rest of the body is drained by hyper or the connection closes.
            Err(_) => break,
        }
    }
    drop(mp);
    let stored = match result {
        None => return errcode(sh, missing_media_code(sh.platform)),
        Some(Err(c)) => return errcode(sh, c),
        Some(Ok(s)) => s,
    };
    let now = sh.now();
    let official = !sh.platform.is_wecom_like();
    let media = Media {
        id: id.clone(),
        filename: stored.filename.clone(),
        content_type: util::content_type_for(&stored.filename).to_string(),
        kind: ty.clone(),
        size: stored.size,
        sha256: std::sync::OnceLock::new(),
        source: Source::File(stored.path),
        encrypted: false,
        is_async: false,
        video: official && ty == "video",
        created_at: now,
    };
    {
        let mut inner = sh.lock();
        inner.media.insert(id.clone(), Arc::new(media));
        inner.stats.uploads += 1;
    }
    if official {
        let mut v =
            json!({"errcode": 0, "errmsg": "ok", "type": ty, "media_id": id, "created_at": now});
        if ty == "thumb" {
            // Reported key for thumbs; media_id is kept too so either reading works.
            v["thumb_media_id"] = json!(id);
        }
        json_ok(sh, v)
    } else {
        json_ok(
            sh,
            json!({"errcode": 0, "errmsg": "", "type": ty, "media_id": id, "created_at": now.to_string()}),
        )
    }
}

/// A part's file name: raw `filename="…"` first, else `filename*=`.
fn part_filename(disp: &util::PartDisposition) -> String {
    match (&disp.filename, &disp.filename_star) {
        (Some(raw), _) => String::from_utf8_lossy(raw).into_owned(),
        (None, Some(star)) => star.clone(),
        (None, None) => String::new(),
    }
}

/// Streams a file part to `path` and validates it. Its SHA-256 is left for
/// when the admin API asks: hashing here took ~40 % of the emulator's CPU
/// per upload, which made every upload, and the benchmarks' upload rows,
/// wait on the server.
/// Memory stays bounded whatever the part's size.
async fn receive_media(
    sh: &Arc<Shared>,
    field: &mut multer::Field<'_>,
    disp: &util::PartDisposition,
    rules: &Rules,
    path: std::path::PathBuf,
) -> Result<Stored, i64> {
    let filename = part_filename(disp);
    let limit = rules.limit;
    let file = std::fs::File::create(&path).map_err(|_| -1i64)?;
    let mut w = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut size = 0u64;
    let mut head: Vec<u8> = Vec::with_capacity(16);
    let mut write_failed = false;
    let fail = |path: &std::path::Path, code: i64| {
        let _ = std::fs::remove_file(path);
        Err(code)
    };
    loop {
        match field.chunk().await {
            Ok(Some(c)) => {
                if head.len() < 16 {
                    let take = (16 - head.len()).min(c.len());
                    head.extend_from_slice(&c[..take]);
                }
                let before = size;
                size += c.len() as u64;
                // Past the limit the rest is only counted: it will be refused.
                if before <= limit && !write_failed && w.write_all(&c).is_err() {
                    write_failed = true;
                }
            }
            Ok(None) => break,
            Err(_) => {
                drop(w);
                return fail(&path, missing_media_code(sh.platform));
            }
        }
    }
    if w.flush().is_err() {
        write_failed = true;
    }
    drop(w);
    let ext = util::extension(&filename);
    let allowed = rules.exts;
    if size == 0 {
        return fail(&path, 44001);
    }
    if filename.is_empty() {
        return fail(&path, 40005);
    }
    if let Some(allowed) = allowed {
        match &ext {
            Some(e) if allowed.contains(&e.as_str()) => {}
            _ => return fail(&path, 40005),
        }
    }
    if size <= 5 {
        return fail(&path, 40006);
    }
    if let (Some(_), Some(e)) = (allowed, &ext) {
        if !util::magic_matches(e, &head) {
            return fail(&path, 40005);
        }
    }
    if size > limit {
        return fail(&path, rules.too_large);
    }
    if let Some(fl) = &disp.filelength {
        if *fl != Ok(size) {
            return fail(&path, 40006);
        }
    }
    if write_failed {
        return fail(&path, -1);
    }
    Ok(Stored {
        path,
        filename,
        size,
        ext,
    })
}

/// `POST /cgi-bin/media/uploadimg`: one JPG/PNG file part (any field name),
/// 5 B–2 MiB; answers a permanent URL served at `/__img/ID.ext`.
async fn uploadimg(sh: &Arc<Shared>, q: &[(String, String)], req: Request<Incoming>) -> Resp {
    if let Err(c) = sh.check_token(query_get(q, "access_token")) {
        drain(req.into_body()).await;
        return errcode(sh, c);
    }
    if sh.platform == Platform::MiniProgram {
        drain(req.into_body()).await;
        return errcode(sh, 48001);
    }
    let boundary = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let Some(boundary) = boundary else {
        drain(req.into_body()).await;
        return errcode(sh, missing_media_code(sh.platform));
    };
    let id = format!("wxmimg{}_{}", sh.next_seq(), util::random_token(24));
    let stream = http_body_util::BodyDataStream::new(req.into_body());
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut result: Option<Result<Stored, i64>> = None;
    let rules = Rules {
        exts: Some(&["jpg", "jpeg", "png"]),
        limit: sh.limit("uploadimg"),
        too_large: 40009,
    };
    // A malformed tail after the file part still uploads (as media/upload).
    while let Ok(Some(mut field)) = mp.next_field().await {
        let disp = field
            .headers()
            .get(hyper::header::CONTENT_DISPOSITION)
            .map(|v| util::parse_part_disposition(v.as_bytes()))
            .unwrap_or_default();
        // WeChat's own example names the part "fieldNameHere": take the
        // first part with a file name, or one named "media".
        let is_file = disp.filename.is_some()
            || disp.filename_star.is_some()
            || disp.name.as_deref() == Some("media");
        if result.is_none() && is_file {
            let path = sh.upload_dir.join(&id);
            result = Some(receive_media(sh, &mut field, &disp, &rules, path).await);
        }
    }
    drop(mp);
    let stored = match result {
        None => return errcode(sh, missing_media_code(sh.platform)),
        Some(Err(c)) => return errcode(sh, c),
        Some(Ok(s)) => s,
    };
    let ext = match stored.ext.as_deref() {
        Some("png") => "png",
        _ => "jpg",
    };
    let name = format!("{id}.{ext}");
    let media = Media {
        id: name.clone(),
        filename: name.clone(),
        content_type: util::content_type_for(&name).to_string(),
        kind: "image".to_string(),
        size: stored.size,
        sha256: std::sync::OnceLock::new(),
        source: Source::File(stored.path),
        encrypted: false,
        is_async: false,
        video: false,
        created_at: sh.now(),
    };
    {
        let mut inner = sh.lock();
        inner.images.insert(name.clone(), Arc::new(media));
        inner.stats.images += 1;
    }
    let url = format!("http://{}/__img/{}", sh.addr, name);
    json_ok(sh, json!({"errcode": 0, "errmsg": "", "url": url}))
}
