//! Makes this crate's tests and examples find libzcfuse at run time
//! without LD_LIBRARY_PATH: an rpath to the directory zcfuse-sys linked
//! (`DEP_ZCFUSE_LIB_DIR`, from its `links = "zcfuse"`). Programs that
//! depend on this crate choose their own rpath or LD_LIBRARY_PATH.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_ZCFUSE_LIB_DIR");
    let Some(dirs) = env::var_os("DEP_ZCFUSE_LIB_DIR") else { return };
    for dir in env::split_paths(&dirs).filter(|d| !d.as_os_str().is_empty()) {
        let d = dir.display();
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{d}");
        println!("cargo:rustc-link-arg-examples=-Wl,-rpath,{d}");
    }
}
