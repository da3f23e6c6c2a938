//! `wxm_download_to_path`: atomic, resumable, never damaging the target.

use crate::support::*;
use serde_json::json;
use wxmedia::error::*;

fn part_files(target: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    wxmedia::download::part_paths(target)
}

#[test]
fn downloads_atomically_and_leaves_no_debris() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 333_333, "seed": 1}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 64 * 1024,
            parallelism: 2,
            ..Default::default()
        },
    );
    let dir = tempdir("atomic");
    let target = dir.join("out.bin");
    let Got {
        rc, errmsg: msg, ..
    } = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(std::fs::read(&target).expect("target") == want);
    let (part, meta) = part_files(&target);
    assert!(!part.exists() && !meta.exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failed_download_never_creates_or_damages_the_target() {
    let emu = start(Platform::WeCom);
    let c = client(&emu, ClientOpts::default());
    let dir = tempdir("nodamage");
    let target = dir.join("keep.txt");
    // Unknown media: no file at all.
    let Got { rc, .. } = download_path(&c, "nope", &target);
    assert_eq!(rc, 40007);
    assert!(!target.exists());
    let (part, meta) = part_files(&target);
    assert!(
        !part.exists() && !meta.exists(),
        "final errors leave no temporary file"
    );
    // An existing file stays as it was.
    std::fs::write(&target, b"precious").expect("write");
    let Got { rc, .. } = download_path(&c, "nope", &target);
    assert_eq!(rc, 40007);
    assert_eq!(std::fs::read(&target).expect("read"), b"precious");
    // A network failure midway: the target is untouched, the part file stays for resume.
    let (id, want) = add_media(&emu, json!({"size": 200_000, "seed": 2}));
    fault(
        &emu,
        json!({"kind": "reset", "media_id": id, "after_bytes": 0, "count": 100}),
    );
    let c2 = client(
        &emu,
        ClientOpts {
            attempts: 2,
            chunk: 32 * 1024,
            ..Default::default()
        },
    );
    let Got { rc, .. } = download_path(&c2, &id, &target);
    assert_eq!(rc, WXM_E_NETWORK);
    assert_eq!(std::fs::read(&target).expect("read"), b"precious");
    reset(&emu);
    let Got {
        rc, errmsg: msg, ..
    } = download_path(&c2, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(std::fs::read(&target).expect("read") == want);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn resumes_after_cancel_fetching_less_than_the_whole_file() {
    let emu = start(Platform::WeCom);
    let size = 1024 * 1024u64;
    let (id, want) = add_media(&emu, json!({"size": size, "seed": 3}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 64 * 1024,
            io_ms: 60_000,
            ..Default::default()
        },
    );
    let dir = tempdir("resume");
    let target = dir.join("big.bin");
    // Throttle every answer so a cancel lands midway.
    fault(
        &emu,
        json!({"kind": "throttle", "media_id": id, "bytes_per_sec": 400_000, "count": 100}),
    );
    assert_eq!(
        to_path_cancelled_after(&c, &id, &target, 600).0,
        WXM_E_CANCELLED
    );
    assert!(!target.exists());
    let (part, meta) = part_files(&target);
    let have = std::fs::metadata(&part).expect("part file kept").len();
    assert!(meta.exists());
    assert!(have > 0 && have < size, "partial file has {have}");
    reset(&emu);
    let Got {
        rc, errmsg: msg, ..
    } = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(std::fs::read(&target).expect("read") == want);
    let fetched: u64 = ranges(&emu, &id).iter().map(|(s, e)| e - s + 1).sum();
    // The kept prefix is proven by its last RESUME_OVERLAP bytes, fetched again.
    assert!(
        fetched <= size - have + 16 + wxmedia::download::RESUME_OVERLAP,
        "refetched {fetched} bytes with {have} on disk"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn parallel_to_path_resumes_from_the_recorded_prefix_not_the_holes() {
    let emu = start(Platform::WeCom);
    let size = 2 * 1024 * 1024u64;
    let (id, want) = add_media(&emu, json!({"size": size, "seed": 7}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 64 * 1024,
            parallelism: 4,
            io_ms: 60_000,
            ..Default::default()
        },
    );
    let dir = tempdir("holes");
    let target = dir.join("p.bin");
    fault(
        &emu,
        json!({"kind": "throttle", "media_id": id, "bytes_per_sec": 600_000, "count": 1000}),
    );
    assert_eq!(
        to_path_cancelled_after(&c, &id, &target, 900).0,
        WXM_E_CANCELLED
    );
    let (part, meta) = part_files(&target);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta).expect("record")).expect("json");
    let complete = record["complete"].as_u64().expect("a recorded prefix");
    let on_disk = std::fs::read(&part).expect("part");
    assert!(complete > 0 && complete < size, "prefix {complete}");
    assert!(
        on_disk[..complete as usize] == want[..complete as usize],
        "the prefix is verified data"
    );
    reset(&emu);
    let Got {
        rc, errmsg: msg, ..
    } = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(std::fs::read(&target).expect("read") == want);
    let fetched: u64 = ranges(&emu, &id).iter().map(|(s, e)| e - s + 1).sum();
    assert!(
        fetched <= size - complete + 16 + wxmedia::download::RESUME_OVERLAP,
        "refetched {fetched} with {complete} verified"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_truncated_part_file_still_resumes_correctly() {
    let emu = start(Platform::WeCom);
    let size = 500_000u64;
    let (id, want) = add_media(&emu, json!({"size": size, "seed": 4}));
    let c = client(
        &emu,
        ClientOpts {
            chunk: 64 * 1024,
            ..Default::default()
        },
    );
    let dir = tempdir("trunc");
    let target = dir.join("t.bin");
    let (part, meta) = part_files(&target);
    // As if power was cut: a part file of an odd length, cut mid-block,
    // shorter than the synced prefix its record names.
    std::fs::write(&part, &want[..123_457]).expect("write part");
    std::fs::write(
        &meta,
        json!({"media_id": id, "endpoint": "Media", "size": size, "complete": 200_000}).to_string(),
    )
    .expect("write meta");
    let Got {
        rc, errmsg: msg, ..
    } = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(std::fs::read(&target).expect("read") == want);
    // 123_457 bytes on disk, proven by the 64 KiB before them: the first
    // request starts at the floor of 123_457 - 65_536 (57_920 = 16 × 3620).
    assert_eq!(ranges(&emu, &id)[0].0, 57_920);

    // A record that names no synced prefix vouches for nothing: from byte 0.
    reset(&emu);
    std::fs::write(&part, &want[..123_457]).expect("write part");
    std::fs::write(
        &meta,
        json!({"media_id": id, "endpoint": "Media", "size": size}).to_string(),
    )
    .expect("write meta");
    let Got {
        rc, errmsg: msg, ..
    } = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(std::fs::read(&target).expect("read") == want);
    assert_eq!(ranges(&emu, &id)[0].0, 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_part_file_of_another_media_is_discarded() {
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 100_000, "seed": 5}));
    let c = client(&emu, ClientOpts::default());
    let dir = tempdir("other");
    let target = dir.join("x.bin");
    let (part, meta) = part_files(&target);
    std::fs::write(&part, vec![0xAAu8; 50_000]).expect("write");
    std::fs::write(
        &meta,
        json!({"media_id": "someone-else", "endpoint": "Media", "size": 100_000}).to_string(),
    )
    .expect("write");
    let Got {
        rc, errmsg: msg, ..
    } = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(std::fs::read(&target).expect("read") == want);
    // Same media_id but the size changed on the server: start over.
    let (part, meta) = part_files(&target);
    std::fs::write(&part, vec![0xAAu8; 50_000]).expect("write");
    std::fs::write(
        &meta,
        json!({"media_id": id, "endpoint": "Media", "size": 99_999}).to_string(),
    )
    .expect("write");
    let Got {
        rc, errmsg: msg, ..
    } = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(std::fs::read(&target).expect("read") == want);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_paths_are_invalid_or_io() {
    let emu = start(Platform::WeCom);
    let (id, _) = add_media(&emu, json!({"size": 100, "seed": 6}));
    let c = client(&emu, ClientOpts::default());
    let dir = tempdir("badpath");
    assert_eq!(download_path(&c, &id, &dir).rc, WXM_E_INVALID_ARG);
    assert_eq!(
        download_path(&c, &id, &dir.join("no/such/dir/x")).rc,
        WXM_E_IO
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_torn_record_beside_a_small_media_is_replaced_and_removed() {
    // Under 4 MiB no record is written up front; one already there (here
    // torn by a crash) must still not survive a successful download.
    let emu = start(Platform::WeCom);
    let (id, want) = add_media(&emu, json!({"size": 200_000, "seed": 6}));
    let c = client(&emu, ClientOpts::default());
    let dir = tempdir("torn");
    let target = dir.join("t.bin");
    let (part, meta) = part_files(&target);
    std::fs::write(&part, vec![0x55u8; 70_000]).expect("write");
    std::fs::write(&meta, b"{\"media_id\":").expect("write");
    let Got {
        rc, errmsg: msg, ..
    } = download_path(&c, &id, &target);
    assert_eq!(rc, 0, "{msg}");
    assert!(std::fs::read(&target).expect("read") == want);
    assert!(!part.exists() && !meta.exists(), "temporary files left");
    let _ = std::fs::remove_dir_all(dir);
}
