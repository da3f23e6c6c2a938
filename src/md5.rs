//! MD5, from the well-kept `md-5` crate: the `md5` field of WeCom's
//! upload_by_url and an object store's Content-MD5 and ETags (checksums
//! there, not security).

use md5::{Digest, Md5};

/// The MD5 of a file, as 32 lowercase hex digits, and its length.
pub fn hex_of_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex(&h.finalize()), total))
}

/// The MD5 of `data`.
pub fn digest_of(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// Lowercase hex, as ETags and upload_by_url write MD5s.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashes_to_its_rfc1321_digest() {
        let dir = std::env::temp_dir().join(format!("wxm-md5-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (input, want) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            let p = dir.join("f");
            std::fs::write(&p, input).expect("write");
            assert_eq!(
                hex_of_file(&p).expect("hash"),
                (want.to_string(), input.len() as u64)
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
