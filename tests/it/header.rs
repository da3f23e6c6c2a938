//! The committed header must be what cbindgen generates from the sources,
//! and its version must be Cargo's.

#[test]
fn committed_header_is_current() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/wxmedia.h"));
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/wxmedia.h"))
            .expect("include/wxmedia.h exists");
    assert!(
        generated == committed,
        "include/wxmedia.h is stale: run `make header` and commit it"
    );
}

#[test]
fn version_macros_match_cargo() {
    let header = include_str!(concat!(env!("OUT_DIR"), "/wxmedia.h"));
    let want = format!(
        "#define WXM_VERSION_STRING \"{}\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(header.contains(&want), "missing {want}");
    for (name, value) in [
        ("MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert!(header.contains(&format!("#define WXM_VERSION_{name} {value}\n")));
    }
    // SAFETY: wxm_version returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(wxmedia::ffi::wxm_version()) };
    assert_eq!(v.to_str(), Ok(env!("CARGO_PKG_VERSION")));
}

#[test]
fn every_library_code_has_text_and_a_macro() {
    let header = include_str!(concat!(env!("OUT_DIR"), "/wxmedia.h"));
    for code in -1014..=-1001 {
        // SAFETY: wxm_strerror returns static NUL-terminated text.
        let text = unsafe { std::ffi::CStr::from_ptr(wxmedia::ffi::wxm_strerror(code)) };
        assert_ne!(text.to_str(), Ok("unknown error code"), "{code}");
        assert!(
            header.contains(&format!(" {code}\n")),
            "no WXM_E_ macro for {code}"
        );
    }
}
