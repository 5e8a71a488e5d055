//! Tells the tests whether the optional reference folder named by WEIR_SHARED_DIR (on developer
//! machines only; `scripts/test.sh` sets it) holds KFP's compiled fixtures. Where it is not set
//! or holds none, the fixture test is reported as ignored with the reason instead of passing
//! with nothing checked.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(weir_shared_fixtures)");
    println!("cargo::rerun-if-env-changed=WEIR_SHARED_DIR");
    let Some(shared) = std::env::var_os("WEIR_SHARED_DIR").map(PathBuf::from) else {
        println!("cargo::rustc-env=WEIR_SHARED_FIXTURES=");
        println!("cargo::rerun-if-changed=build.rs");
        return;
    };
    let fixtures = shared.join("fixtures").join("kfp");
    println!("cargo::rustc-env=WEIR_SHARED_FIXTURES={}", fixtures.display());
    if fixtures.is_dir() {
        println!("cargo::rustc-cfg=weir_shared_fixtures");
        println!("cargo::rerun-if-changed={}", fixtures.display());
    } else {
        // A missing path is not watched: cargo would rerun this script, and rebuild every crate
        // above weir-spec, on each build. A folder added later is seen once this file changes.
        println!("cargo::rerun-if-changed=build.rs");
    }
}
