//! Every SDK-compiled reference fixture reads and validates. The fixtures live in an optional
//! folder named by WEIR_SHARED_DIR, which only developer machines have (`scripts/test.sh` sets it):
//! `build.rs` looks for it, and where it is missing this test is reported as ignored with the
//! reason. The suite's own SDK-compiled pipelines are checked through the API tests.

use std::path::Path;

#[test]
#[cfg_attr(
    not(weir_shared_fixtures),
    ignore = "no fixtures/kfp in WEIR_SHARED_DIR (developer machines only; scripts/test.sh sets it \
              when the folder is beside the repository)"
)]
fn shared_kfp_fixtures_validate() {
    let dir = Path::new(env!("WEIR_SHARED_FIXTURES"));
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read the shared fixtures at {}: {e}", dir.display()));
    let mut checked = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let package = weir_spec::read_package(&name, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        weir_spec::validate(&package.pipeline_spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        checked += 1;
    }
    assert!(checked >= 9, "expected the nine reference fixtures in {}, found {checked}", dir.display());
}
