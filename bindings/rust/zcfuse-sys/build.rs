//! Finds libzcfuse for the linker: the directory in `ZCFUSE_LIB_DIR`, else
//! what `pkg-config --libs zcfuse` says; otherwise it stops and lists what
//! it tried. The directory found is also an rpath of this crate's tests and
//! is handed to dependents as `DEP_ZCFUSE_LIB_DIR` (`links = "zcfuse"`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{self, Command};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in ["ZCFUSE_LIB_DIR", "PKG_CONFIG", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let mut tried = Vec::new();
    let found = match env::var_os("ZCFUSE_LIB_DIR") {
        // Set: it is what the user wants, so a wrong one is an error, not
        // a reason to pick up some other library.
        Some(dir) => from_lib_dir(Path::new(&dir), &mut tried),
        None => {
            tried.push("ZCFUSE_LIB_DIR: not set".to_string());
            from_pkg_config(&mut tried)
        }
    };
    let Some(dirs) = found else {
        eprintln!("zcfuse-sys: cannot find libzcfuse. Tried:");
        for t in &tried {
            eprintln!("  - {t}");
        }
        eprintln!(
            "Build it with `make lib` at the zcfuse repository root and set \
             ZCFUSE_LIB_DIR=/path/to/zcfuse/build (a relative path is taken from $PWD), or install it \
             (`make install PREFIX=...`) and make `pkg-config --libs zcfuse` \
             find it (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig)."
        );
        process::exit(1);
    };
    if let Some(out) = link_into_out_dir(&dirs) {
        // Cargo puts search paths inside target/ (OUT_DIR is) on the
        // loader's path of everything it runs: `cargo run`, tests and
        // doctests of this workspace and of dependents find the library.
        println!("cargo:rustc-link-search=native={}", out.display());
    }
    for dir in &dirs {
        let d = dir.display();
        println!("cargo:rustc-link-search=native={d}");
        // Tests run from target/ without LD_LIBRARY_PATH.
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{d}");
    }
    println!("cargo:rustc-link-lib=dylib=zcfuse");
    // For dependents' build scripts: DEP_ZCFUSE_LIB_DIR (':'-separated).
    let joined = env::join_paths(&dirs).expect("library directories contain ':'");
    println!("cargo:lib_dir={}", joined.to_string_lossy());
}

/// Symlinks OUT_DIR/libzcfuse.so* to the library found (the first
/// directory that has it), and returns OUT_DIR; None when there is no such
/// directory (a library in the linker's default path) or no symlink.
fn link_into_out_dir(dirs: &[PathBuf]) -> Option<PathBuf> {
    let out = PathBuf::from(env::var_os("OUT_DIR")?);
    let dir = dirs.iter().find(|d| d.join("libzcfuse.so").exists())?;
    let mut linked = false;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("libzcfuse.so") {
            continue;
        }
        let link = out.join(&name);
        let _ = std::fs::remove_file(&link);
        linked |= std::os::unix::fs::symlink(entry.path(), &link).is_ok();
    }
    linked.then_some(out)
}

/// The library in dir (ZCFUSE_LIB_DIR). A relative dir is taken relative
/// to the directory cargo was started from ($PWD), which is what a user
/// typing `ZCFUSE_LIB_DIR=build cargo test ...` means; build scripts
/// themselves run in the package's directory.
fn from_lib_dir(dir: &Path, tried: &mut Vec<String>) -> Option<Vec<PathBuf>> {
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else if let Some(pwd) = env::var_os("PWD") {
        Path::new(&pwd).join(dir)
    } else {
        tried.push(format!(
            "ZCFUSE_LIB_DIR={}: relative, and PWD is not set to resolve it against (give an absolute path)",
            dir.display()
        ));
        return None;
    };
    let lib = abs.join("libzcfuse.so");
    if lib.exists() {
        return Some(vec![abs.canonicalize().unwrap_or(abs)]);
    }
    tried.push(format!(
        "ZCFUSE_LIB_DIR={}: {} does not exist{}",
        dir.display(),
        lib.display(),
        if abs.join("libzcfuse.so.0").exists() {
            " (libzcfuse.so.0 does, but the linker needs the unversioned name)"
        } else {
            ""
        }
    ));
    None
}

/// The library directories from `pkg-config --libs zcfuse` ($PKG_CONFIG
/// names another binary). An empty list means a library in the linker's
/// default path.
fn from_pkg_config(tried: &mut Vec<String>) -> Option<Vec<PathBuf>> {
    let bin = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let what = format!("`{bin} --libs zcfuse`");
    let out = match Command::new(&bin).args(["--libs", "zcfuse"]).output() {
        Ok(out) => out,
        Err(e) => {
            tried.push(format!("{what}: cannot run {bin}: {e}"));
            return None;
        }
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim().replace('\n', " ");
        tried.push(format!(
            "{what}: {} ({err}; PKG_CONFIG_PATH={})",
            out.status,
            env::var("PKG_CONFIG_PATH").unwrap_or_else(|_| "unset".into())
        ));
        return None;
    }
    let libs = String::from_utf8_lossy(&out.stdout);
    let mut dirs = Vec::new();
    let mut links_zcfuse = false;
    for flag in libs.split_whitespace() {
        if let Some(d) = flag.strip_prefix("-L") {
            dirs.push(PathBuf::from(d));
        } else if flag == "-lzcfuse" {
            links_zcfuse = true;
        }
    }
    if !links_zcfuse {
        tried.push(format!("{what}: printed `{}`, without -lzcfuse", libs.trim()));
        return None;
    }
    Some(dirs)
}
