//! Generates the C header with cbindgen into OUT_DIR (never into the source
//! tree: a build must not dirty it). `tests/it/header.rs` fails when the
//! committed include/wxmedia.h differs; `make header` refreshes it.

use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=WXMEDIA_UPDATE_HEADER");

    // A versioned soname, so installed copies can live side by side.
    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libwxmedia.so.{major}");

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    let version = env::var("CARGO_PKG_VERSION").expect("set by cargo");
    let minor = env::var("CARGO_PKG_VERSION_MINOR").expect("set by cargo");
    let patch = env::var("CARGO_PKG_VERSION_PATCH").expect("set by cargo");
    config.after_includes = Some(format!(
        "\n/* The version this header belongs to; wxm_version() returns the library's. */\n\
         #define WXM_VERSION_MAJOR {major}\n#define WXM_VERSION_MINOR {minor}\n\
         #define WXM_VERSION_PATCH {patch}\n#define WXM_VERSION_STRING \"{version}\"\n"
    ));
    let header = out_dir.join("wxmedia.h");
    match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(&header);
            if env::var_os("WXMEDIA_UPDATE_HEADER").is_some() {
                std::fs::copy(&header, crate_dir.join("include/wxmedia.h"))
                    .expect("include/ is writable");
            }
        }
        Err(e) => panic!("cbindgen failed: {e}"),
    }
}
