//! Every SDK-compiled reference fixture reads and validates. The fixtures live in the shared
//! folder beside the repository; the suite's own SDK-compiled pipelines are checked through the
//! API tests, so this is an extra check where the folder exists.

use std::path::Path;

#[test]
fn shared_kfp_fixtures_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/kfp");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no shared fixtures at {}; nothing to check", dir.display());
        return;
    };
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
    assert!(checked >= 9, "expected the nine reference fixtures, found {checked}");
}
