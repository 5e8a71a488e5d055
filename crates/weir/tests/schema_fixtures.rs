//! Every released schema version's fixture (tests/schema-fixtures/vN: data that version wrote
//! through the API, as a backup) is restored on every backend pair, upgraded to the current
//! schema, and must list through the API exactly as recorded in its `expected.json`.
//!
//! `WEIR_UPDATE_SCHEMA_FIXTURES=vN` writes vN/expected.json (once, when vN is released).

mod common;

use std::path::{Path, PathBuf};

use common::{get, listing, ok, Storage, Weir};
use serde_json::Value;
use weir_store_sql::Dialect;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/schema-fixtures");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("backup.tar.gz").exists())
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no schema fixtures in {}", dir.display());
    found
}

/// What a run id the fixture holds: the finished one.
async fn finished_run(weir: &Weir) -> String {
    let runs = get(&weir.base, "/apis/v2beta1/runs?filter=%7B%22predicates%22%3A%5B%7B%22operation%22%3A%22EQUALS%22%2C%22key%22%3A%22display_name%22%2C%22string_value%22%3A%22finished%22%7D%5D%7D").await;
    runs["runs"][0]["run_id"].as_str().unwrap_or_else(|| panic!("no run named finished: {runs}")).to_string()
}

async fn restored_listing(fixture: &Path, dialect: Dialect) -> Value {
    let storage = Storage::new(dialect);
    let archive = fixture.join("backup.tar.gz");
    ok(&storage.weir(&["storage", "restore", "-i", archive.to_str().unwrap()]));
    ok(&storage.weir(&["storage", "upgrade"]));
    let status: Value =
        serde_json::from_slice(&storage.weir(&["storage", "status", "--output", "json"]).stdout).unwrap();
    assert_eq!(status["metadata"]["pending_migrations"], serde_json::json!([]), "{status}");
    assert_eq!(status["paired"], true);
    // The fixture's recurring runs would fire slots missed since it was made; the listing is
    // of what the fixture holds.
    let weir = Weir::start_with(&storage, &["--disable-scheduler"]);
    let run_id = finished_run(&weir).await;
    let listed = listing(&weir, &storage, &run_id).await;
    weir.stop();
    let check = storage.weir(&["storage", "check"]);
    ok(&check);
    storage.db.drop_database().await;
    listed
}

#[tokio::test]
async fn every_schema_fixture_upgrades_on_every_backend() {
    let update = std::env::var("WEIR_UPDATE_SCHEMA_FIXTURES").ok();
    for fixture in fixtures() {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        let sqlite = restored_listing(&fixture, Dialect::Sqlite).await;
        let expected_path = fixture.join("expected.json");
        if update.as_deref() == Some(name.as_str()) {
            std::fs::write(&expected_path, serde_json::to_string_pretty(&sqlite).unwrap()).unwrap();
        }
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|_| panic!("{} is missing", expected_path.display())),
        )
        .unwrap();
        assert_eq!(sqlite, expected, "fixture {name} on SQLite+folder");
        for dialect in [Dialect::MySql, Dialect::Postgres] {
            assert_eq!(restored_listing(&fixture, dialect).await, expected, "fixture {name} on {}", dialect.name());
        }
    }
}
