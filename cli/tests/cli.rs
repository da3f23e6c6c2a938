//! The `wxmedia` command, run as a user would, against the emulator.

use std::process::Command;
use wxmedia_emulator::{Emulator, Options};

const TOKEN: &str = "cli-test-token-0001";

fn emulator() -> Emulator {
    Emulator::start(Options {
        access_tokens: vec![TOKEN.into()],
        ..Options::default()
    })
    .expect("emulator")
}

fn wxmedia(emu: &Emulator, args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wxmedia"))
        .args(args)
        .current_dir(dir)
        .env("WXMEDIA_BASE_URL", emu.base_url())
        .env("WXMEDIA_ACCESS_TOKEN", TOKEN)
        .env_remove("WXMEDIA_ID")
        .env_remove("WXMEDIA_SECRET")
        .output()
        .expect("wxmedia runs")
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wxmedia-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

#[test]
fn upload_then_get_to_a_file_to_stdout_and_by_server_name() {
    let emu = emulator();
    let dir = tempdir("roundtrip");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 256) as u8).collect();
    std::fs::write(dir.join("报告.pdf"), &data).expect("write");
    let out = wxmedia(&emu, &["upload", "file", "报告.pdf"], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let id = answer["media_id"].as_str().expect("media_id").to_string();
    assert!(answer["created_at"].as_i64().unwrap_or(0) > 0);

    let out = wxmedia(
        &emu,
        &[
            "--chunk-size",
            "65536",
            "--parallel",
            "3",
            "get",
            &id,
            "-o",
            "copy.bin",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(dir.join("copy.bin")).expect("copy"), data);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("saved 300000 bytes to copy.bin"), "{said}");

    // --quiet: the file, and not a word on success.
    let out = wxmedia(&emu, &["--quiet", "get", &id, "-o", "quiet.bin"], &dir);
    assert!(out.status.success());
    assert_eq!(std::fs::read(dir.join("quiet.bin")).expect("quiet"), data);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = wxmedia(&emu, &["get", &id, "-o", "-"], &dir);
    assert!(out.status.success());
    assert_eq!(out.stdout, data);

    let out = wxmedia(&emu, &["get", &id], &dir.join("."));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.join("报告.pdf")).expect("by server name"),
        data
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn errcodes_and_usage_errors_as_exit_information() {
    let emu = emulator();
    let dir = tempdir("errors");
    let out = wxmedia(&emu, &["get", "no-such-media", "-o", "x.bin"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("errcode 40007"), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
    assert!(!dir.join("x.bin").exists());

    std::fs::write(dir.join("tiny.txt"), b"abc").expect("write");
    let out = wxmedia(&emu, &["upload", "file", "tiny.txt"], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("errcode 40006"));

    for bad in [
        &["frobnicate"][..],
        &["get"],
        &["--platform", "mars", "get", "x"],
        &["upload", "file"],
    ] {
        let out = wxmedia(&emu, bad, &dir);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn upload_by_url_with_md5_from_a_local_copy() {
    let emu = emulator();
    let dir = tempdir("byurl");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(dir.join("clip.mp4"), &data).expect("write");
    let out = wxmedia(&emu, &["upload", "file", "clip.mp4"], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let url = format!(
        "{}/__video/{}",
        emu.base_url(),
        answer["media_id"].as_str().expect("id")
    );
    let out = wxmedia(
        &emu,
        &[
            "upload-by-url",
            "video",
            &url,
            "--filename",
            "c.mp4",
            "--local",
            "clip.mp4",
            "--timeout",
            "30",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let id = job["media_id"].as_str().expect("media_id");
    let out = wxmedia(&emu, &["get", id, "-o", "-"], &dir);
    assert_eq!(out.stdout, data);
    // A wrong MD5 is the job's errcode.
    let out = wxmedia(
        &emu,
        &[
            "upload-by-url",
            "video",
            &url,
            "--filename",
            "c.mp4",
            "--md5",
            &"0".repeat(32),
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("errcode 301019"));
    let _ = std::fs::remove_dir_all(dir);
}
