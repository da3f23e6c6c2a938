//! media/upload: validation errcodes per platform, odd but legal multipart bodies.

mod common;
use common::*;
use std::collections::HashMap;

const MIB: usize = 1024 * 1024;

fn code(r: &Resp) -> i64 {
    r.errcode()
}

#[test]
fn wecom_upload_success_and_download() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    let data = jpeg(5000);
    let r = upload(a, "image", "photo.jpg", &data);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=UTF-8")
    );
    let v = r.json();
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["type"], "image");
    // WeCom: created_at is a string.
    let ca = v["created_at"].as_str().expect("created_at string");
    assert!(ca.parse::<u64>().unwrap() > 1_600_000_000);
    let id = v["media_id"].as_str().unwrap();
    let r = get(a, &media_get(id), &[]);
    assert_eq!(r.body, data);
    assert_eq!(r.header("content-type").as_deref(), Some("image/jpeg"));
    assert_eq!(
        r.header("content-disposition").as_deref(),
        Some("attachment; filename=\"photo.jpg\"")
    );
    let info = get(a, &format!("/__admin/media/{id}"), &[]).json();
    assert_eq!(info["sha256"], sha256_hex(&data));
    assert_eq!(info["size"], 5000);
    assert_eq!(info["type"], "image");
    assert_eq!(stats(a)["uploads"], 1);
    // The digest is computed on the first admin GET and kept.
    assert_eq!(
        get(a, &format!("/__admin/media/{id}"), &[]).json()["sha256"],
        sha256_hex(&data)
    );
    // DELETE gives back the stored bytes too.
    let stored = emu.upload_dir().join(id);
    assert_eq!(std::fs::read(&stored).expect("the stored upload"), data);
    let mut c = Conn::open(a);
    c.send("DELETE", &format!("/__admin/media/{id}"), &[], b"");
    assert_eq!(c.read_response().unwrap().status, 200);
    assert!(!stored.exists(), "{} outlived its DELETE", stored.display());

    for (ty, name, d) in [
        ("voice", "v.amr", amr(1000)),
        ("video", "v.mp4", mp4(1000)),
        ("file", "doc.anything", b"plain text file".to_vec()),
        ("file", "noext", b"plain text file".to_vec()),
    ] {
        let r = upload(a, ty, name, &d);
        assert_eq!(
            code(&r),
            0,
            "{ty} {name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let id = r.json()["media_id"].as_str().unwrap().to_string();
        assert_eq!(get(a, &media_get(&id), &[]).body, d);
    }
}

#[test]
fn official_upload_created_at_number_and_video_url() {
    let emu = start(Platform::Official);
    let a = emu.addr();
    let v = upload(a, "image", "p.gif", b"GIF89a-some-gif-bytes").json();
    assert_eq!(v["errcode"], 0);
    assert!(v["created_at"].is_u64(), "{v}");
    let v = upload(a, "voice", "s.mp3", b"ID3\x03\x00\x00rest-of-mp3").json();
    assert_eq!(v["errcode"], 0, "{v}");
    let v = upload(a, "thumb", "t.jpg", &jpeg(1000)).json();
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["thumb_media_id"], v["media_id"]);
    let v = upload(a, "video", "clip.mp4", &mp4(4000)).json();
    let id = v["media_id"].as_str().unwrap().to_string();
    let r = get(a, &media_get(&id), &[]);
    let url = r.json()["video_url"].as_str().unwrap().to_string();
    let path = url.trim_start_matches(&format!("http://{a}"));
    assert_eq!(get(a, path, &[]).body, mp4(4000));
}

#[test]
fn validation_errcodes_wecom() {
    let emu = start_with(Options {
        platform: Platform::WeCom,
        access_tokens: vec!["TOK".into()],
        limits: HashMap::from([("image".to_string(), 2000u64)]),
        ..Default::default()
    });
    let a = emu.addr();
    assert_eq!(code(&upload(a, "thumb", "a.jpg", &jpeg(100))), 40004);
    assert_eq!(code(&upload(a, "bogus", "a.jpg", &jpeg(100))), 40004);
    assert_eq!(code(&upload(a, "image", "a.gif", b"GIF89a-xxxxxx")), 40005); // gif: OA only
    assert_eq!(code(&upload(a, "image", "noext", &jpeg(100))), 40005);
    assert_eq!(code(&upload(a, "image", "a.png", &jpeg(100))), 40005); // magic mismatch
    assert_eq!(code(&upload(a, "voice", "a.mp3", b"ID3xxxxxxxxx")), 40005);
    assert_eq!(code(&upload(a, "video", "a.mp4", &jpeg(100))), 40005);
    assert_eq!(code(&upload(a, "image", "a.jpg", b"")), 44001);
    assert_eq!(code(&upload(a, "image", "a.jpg", &jpeg(5))), 40006);
    assert_eq!(code(&upload(a, "image", "a.jpg", &jpeg(6))), 0);
    assert_eq!(code(&upload(a, "image", "a.jpg", &jpeg(2000))), 0); // limit is inclusive
    assert_eq!(code(&upload(a, "image", "a.jpg", &jpeg(2001))), 40009);
    assert_eq!(code(&upload(a, "voice", "a.amr", &amr(2 * MIB + 1))), 40010);
    assert_eq!(
        code(&upload(a, "video", "a.mp4", &mp4(10 * MIB + 1))),
        40011
    );
    assert_eq!(
        code(&upload(a, "file", "a.bin", &vec![7u8; 20 * MIB + 1])),
        40006
    );
    assert_eq!(code(&upload(a, "file", "a.bin", &[1, 2, 3])), 40006);
    // No token / bad token come first.
    let r = post(
        a,
        "/cgi-bin/media/upload?type=image",
        &[("Content-Type", "multipart/form-data; boundary=b")],
        b"--b--\r\n",
    );
    assert_eq!(code(&r), 41001);
    // No media part: 44001 on WeCom.
    let body = multipart(
        "b",
        &[(
            b"Content-Disposition: form-data; name=\"other\"; filename=\"a.jpg\"",
            &jpeg(100),
        )],
    );
    let r = post(
        a,
        "/cgi-bin/media/upload?access_token=TOK&type=image",
        &[("Content-Type", "multipart/form-data; boundary=b")],
        &body,
    );
    assert_eq!(code(&r), 44001);
    // Not multipart at all.
    let r = post(
        a,
        "/cgi-bin/media/upload?access_token=TOK&type=image",
        &[("Content-Type", "application/octet-stream")],
        &jpeg(100),
    );
    assert_eq!(code(&r), 44001);
    assert_eq!(stats(a)["uploads"], 2);
}

#[test]
fn validation_errcodes_official_and_miniprogram() {
    let emu = start(Platform::Official);
    let a = emu.addr();
    assert_eq!(code(&upload(a, "file", "a.txt", b"hello world")), 40004);
    assert_eq!(
        code(&upload(a, "thumb", "a.jpg", &jpeg(64 * 1024 + 1))),
        40012
    );
    assert_eq!(code(&upload(a, "thumb", "a.png", &png(100))), 40005);
    assert_eq!(
        code(&upload(a, "image", "a.jpg", &jpeg(10 * MIB + 1))),
        40009
    );
    let body = multipart(
        "b",
        &[(
            b"Content-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"",
            &jpeg(100),
        )],
    );
    let r = post(
        a,
        "/cgi-bin/media/upload?access_token=TOK&type=image",
        &[("Content-Type", "multipart/form-data; boundary=b")],
        &body,
    );
    assert_eq!(code(&r), 41005);
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));

    let emu = start(Platform::MiniProgram);
    let a = emu.addr();
    assert_eq!(code(&upload(a, "voice", "a.amr", &amr(100))), 40004);
    assert_eq!(code(&upload(a, "video", "a.mp4", &mp4(100))), 40004);
    let v = upload(a, "image", "a.png", &png(100)).json();
    assert_eq!(v["errcode"], 0);
    assert!(v["created_at"].is_u64());
}

#[test]
fn filelength_must_match() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    let data = jpeg(100);
    let send = |fl: &str| {
        let head = format!(
            "Content-Disposition: form-data; name=\"media\"; filename=\"a.jpg\"; filelength={fl}"
        );
        let body = multipart("bb", &[(head.as_bytes(), &data)]);
        post(
            a,
            "/cgi-bin/media/upload?access_token=TOK&type=image",
            &[("Content-Type", "multipart/form-data; boundary=bb")],
            &body,
        )
    };
    assert_eq!(code(&send("100")), 0);
    assert_eq!(code(&send("99")), 40006);
    assert_eq!(code(&send("101")), 40006);
    assert_eq!(code(&send("x")), 40006);
}

#[test]
fn odd_but_legal_multipart() {
    let emu = start(Platform::WeCom);
    let a = emu.addr();
    let data = png(777);
    // Quoted boundary with characters that need quoting, a preamble, a part
    // before and after the media part, a second media part (ignored), no
    // space after ';', a UTF-8 file name, lower-case header names.
    let boundary = "simple boundary:=?";
    let mut body = b"this is a preamble\r\n".to_vec();
    body.extend(multipart(
        boundary,
        &[
            (b"content-disposition: form-data; name=\"note\"", b"first part"),
            (
                "content-disposition: form-data;name=media;filename=\"图片 1.png\"\r\ncontent-type: image/png".as_bytes(),
                &data,
            ),
            (b"Content-Disposition: form-data; name=\"media\"; filename=\"b.png\"", &png(50)),
            (b"Content-Disposition: form-data; name=\"tail\"", b"last"),
        ],
    ));
    body.extend_from_slice(b"epilogue");
    let r = post(
        a,
        "/cgi-bin/media/upload?access_token=TOK&type=image",
        &[(
            "Content-Type",
            "multipart/form-data; boundary=\"simple boundary:=?\"",
        )],
        &body,
    );
    let v = r.json();
    assert_eq!(v["errcode"], 0, "{v}");
    let id = v["media_id"].as_str().unwrap();
    let r = get(a, &media_get(id), &[]);
    assert_eq!(r.body, data);
    let mut want = b"attachment; filename*=utf-8''%E5%9B%BE%E7%89%87%201.png; filename=\"".to_vec();
    want.extend_from_slice("图片 1.png".as_bytes());
    want.push(b'"');
    assert_eq!(r.header_bytes("content-disposition"), Some(&want[..]));

    // Only filename* given: decoded.
    let body = multipart(
        "q",
        &[(
            b"Content-Disposition: form-data; name=\"media\"; filename*=UTF-8''%E5%9B%BE.png",
            &data,
        )],
    );
    let r = post(
        a,
        "/cgi-bin/media/upload?access_token=TOK&type=image",
        &[("Content-Type", "multipart/form-data; boundary=q")],
        &body,
    );
    let id = r.json()["media_id"].as_str().unwrap().to_string();
    assert_eq!(
        get(a, &format!("/__admin/media/{id}"), &[]).json()["filename"],
        "图.png"
    );

    // Percent-encoded names in filename= are stored literally, like WeChat.
    let r = upload(a, "image", "%E5%9B%BE.png", &data);
    let id = r.json()["media_id"].as_str().unwrap().to_string();
    assert_eq!(
        get(a, &format!("/__admin/media/{id}"), &[]).json()["filename"],
        "%E5%9B%BE.png"
    );
}

#[test]
fn large_upload_streams() {
    // 40 MiB file with a raised limit: streamed to disk, hashed incrementally.
    let emu = start_with(Options {
        access_tokens: vec!["TOK".into()],
        limits: HashMap::from([("file".to_string(), 100 * MIB as u64)]),
        ..Default::default()
    });
    let a = emu.addr();
    let data = generated(11, 0, 40 * MIB);
    let r = upload(a, "file", "big.bin", &data);
    let v = r.json();
    assert_eq!(v["errcode"], 0, "{v}");
    let id = v["media_id"].as_str().unwrap();
    let info = get(a, &format!("/__admin/media/{id}"), &[]).json();
    assert_eq!(info["sha256"], sha256_hex(&data));
    let r = get(a, &media_get(id), &[("Range", "bytes=33554432-33558527")]);
    assert_eq!(r.body, data[33554432..33558528]);
}
