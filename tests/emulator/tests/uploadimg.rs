//! media/uploadimg and the /__img/ URLs it hands out.

mod common;
use common::*;
use serde_json::json;
use std::net::SocketAddr;

const MIB: usize = 1024 * 1024;

/// Uploads one part with this field name and file name.
fn uploadimg_field(addr: SocketAddr, field: &str, filename: &str, data: &[u8]) -> Resp {
    let head = format!(
        "Content-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream"
    );
    let body = multipart("imgBoundary", &[(head.as_bytes(), data)]);
    post(
        addr,
        "/cgi-bin/media/uploadimg?access_token=TOK",
        &[("Content-Type", "multipart/form-data; boundary=imgBoundary")],
        &body,
    )
}

fn uploadimg(addr: SocketAddr, filename: &str, data: &[u8]) -> Resp {
    uploadimg_field(addr, "media", filename, data)
}

/// The path part of an uploadimg URL, checking its shape.
fn img_path(addr: SocketAddr, r: &Resp, ext: &str) -> String {
    let v = r.json();
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["errmsg"], "");
    let url = v["url"].as_str().expect("url");
    let prefix = format!("http://{addr}/__img/");
    assert!(url.starts_with(&prefix), "{url}");
    assert!(url.ends_with(&format!(".{ext}")), "{url}");
    url[prefix.len() - "/__img/".len()..].to_string()
}

#[test]
fn jpg_and_png_are_served_back() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    let jpg = jpeg(100_000);
    let png_ = png(5000);
    let rj = uploadimg(a, "photo.JPEG", &jpg);
    let pj = img_path(a, &rj, "jpg");
    // WeChat's doc example names the part "fieldNameHere".
    let rp = uploadimg_field(a, "fieldNameHere", "shot.png", &png_);
    let pp = img_path(a, &rp, "png");
    assert_ne!(pj, pp);

    let r = get(a, &pj, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, jpg);
    assert_eq!(r.header("content-type").as_deref(), Some("image/jpeg"));
    assert_eq!(r.header("content-length"), Some(jpg.len().to_string()));
    assert!(r.header("content-disposition").is_none());
    let r = get(a, &pp, &[]);
    assert_eq!(r.body, png_);
    assert_eq!(r.header("content-type").as_deref(), Some("image/png"));
    // Range, no token needed.
    let r = get(a, &pj, &[("Range", "bytes=10-19")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &jpg[10..20]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 10-19/{}", jpg.len()))
    );
    // Unknown images 404.
    assert_eq!(get(a, "/__img/nope.jpg", &[]).status, 404);
    // Not media: media/get does not know them.
    let id = pj.trim_start_matches("/__img/");
    assert_eq!(get(a, &media_get(id), &[]).errcode(), 40007);

    let st = stats(a);
    assert_eq!(st["requests"]["media/uploadimg"], 2);
    assert_eq!(st["requests"]["img"], 4);
    assert_eq!(st["images"], 2);
    assert_eq!(st["uploads"], 0);
}

#[test]
fn validation() {
    let emu = start(Platform::Kf);
    let a = emu.addr();
    // Type: extension and magic bytes must both be JPG or PNG.
    assert_eq!(uploadimg(a, "a.gif", b"GIF89a-------").errcode(), 40005);
    assert_eq!(uploadimg(a, "a.jpg", &png(100)).errcode(), 40005);
    assert_eq!(uploadimg(a, "a.png", &jpeg(100)).errcode(), 40005);
    assert_eq!(uploadimg(a, "a.bmp", &jpeg(100)).errcode(), 40005);
    assert_eq!(uploadimg(a, "noext", &jpeg(100)).errcode(), 40005);
    assert_eq!(uploadimg(a, "", &jpeg(100)).errcode(), 40005);
    // Size: more than 5 bytes, at most 2 MiB.
    assert_eq!(uploadimg(a, "a.jpg", &jpeg(5)).errcode(), 40006);
    assert_eq!(uploadimg(a, "a.jpg", &jpeg(6)).errcode(), 0);
    assert_eq!(uploadimg(a, "a.jpg", &jpeg(2 * MIB)).errcode(), 0);
    assert_eq!(uploadimg(a, "a.jpg", &jpeg(2 * MIB + 1)).errcode(), 40009);
    assert_eq!(uploadimg(a, "a.jpg", b"").errcode(), 44001);
    // No file part at all.
    let body = multipart(
        "bb",
        &[(b"Content-Disposition: form-data; name=\"other\"", b"x")],
    );
    let r = post(
        a,
        "/cgi-bin/media/uploadimg?access_token=TOK",
        &[("Content-Type", "multipart/form-data; boundary=bb")],
        &body,
    );
    assert_eq!(r.errcode(), 44001);
    let r = post(
        a,
        "/cgi-bin/media/uploadimg?access_token=TOK",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(r.errcode(), 44001);
    // Tokens.
    let r = post(a, "/cgi-bin/media/uploadimg", &[], b"");
    assert_eq!(r.errcode(), 41001);
    let r = post(a, "/cgi-bin/media/uploadimg?access_token=x", &[], b"");
    assert_eq!(r.errcode(), 40001);
    assert_eq!(stats(a)["images"], 2);
}

#[test]
fn limit_override_platforms_and_faults() {
    let emu = start_with(Options {
        platform: Platform::Official,
        access_tokens: vec!["TOK".into()],
        limits: [("uploadimg".to_string(), 1000)].into_iter().collect(),
        ..Default::default()
    });
    let a = emu.addr();
    assert_eq!(uploadimg(a, "a.png", &png(1000)).errcode(), 0);
    let r = uploadimg(a, "a.png", &png(1001));
    assert_eq!(r.errcode(), 40009);
    // Official Account errors are text/plain; a missing part is 41005 there.
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    let r = post(
        a,
        "/cgi-bin/media/uploadimg?access_token=TOK",
        &[("Content-Type", "multipart/form-data; boundary=bb")],
        b"--bb--\r\n",
    );
    assert_eq!(r.errcode(), 41005);
    admin(
        a,
        "faults",
        json!({"kind": "errcode", "errcode": -1, "endpoint": "media/uploadimg"}),
    );
    assert_eq!(uploadimg(a, "a.png", &png(100)).errcode(), -1);
    let p = img_path(a, &uploadimg(a, "b.png", &png(100)), "png");
    admin(
        a,
        "faults",
        json!({"kind": "http_status", "status": 502, "endpoint": "img"}),
    );
    assert_eq!(get(a, &p, &[]).status, 502);
    assert_eq!(get(a, &p, &[]).body, png(100));

    let mp = start(Platform::MiniProgram);
    assert_eq!(uploadimg(mp.addr(), "a.png", &png(100)).errcode(), 48001);
}
