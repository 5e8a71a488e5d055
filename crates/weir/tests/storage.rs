//! `weir storage` end to end: backup and restore between SQLite+folder and PostgreSQL+S3 (and
//! back) with identical API listings and artifact bytes; check, status, upgrade and purge,
//! and their refusals, which change neither store.

mod common;

use std::time::Duration;

use common::{eventually, get, listing, ok, post, spec, Storage, Weir};
use serde_json::{json, Value};
use weir_store::StoreAdmin;
use weir_store_sql::{ConnectSettings, Dialect, SqlStore};

/// Some of everything, through the API: pipelines with versions, experiments (one archived),
/// runs that ran and made an artifact, a recurring run.
async fn populate(weir: &Weir) -> String {
    let base = &weir.base;
    let pipeline = post(base, "/apis/v2beta1/pipelines", json!({"display_name": "stored"})).await;
    let pipeline_id = pipeline["pipeline_id"].as_str().unwrap().to_string();
    post(
        base,
        &format!("/apis/v2beta1/pipelines/{pipeline_id}/versions"),
        json!({"display_name": "v1", "pipeline_spec": spec("dataset")}),
    )
    .await;
    let experiment = post(base, "/apis/v2beta1/experiments", json!({"display_name": "kept"})).await;
    let experiment_id = experiment["experiment_id"].as_str().unwrap().to_string();
    let run = post(base, "/apis/v2beta1/runs", json!({"display_name": "r1", "experiment_id": experiment_id, "pipeline_spec": spec("dataset"), "runtime_config": {"parameters": {"text": "bytes to keep"}}})).await;
    let run_id = run["run_id"].as_str().unwrap().to_string();
    eventually("the run to finish", Duration::from_secs(60), || async {
        (get(base, &format!("/apis/v2beta1/runs/{run_id}")).await["state"] == "SUCCEEDED").then_some(())
    })
    .await;
    post(base, "/apis/v2beta1/recurringruns", json!({"display_name": "nightly", "pipeline_spec": spec("dataset"), "max_concurrency": 1, "mode": "ENABLE", "trigger": {"cron_schedule": {"cron": "0 0 2 * * *"}}})).await;
    let archived = post(base, "/apis/v2beta1/experiments", json!({"display_name": "archived"})).await;
    post(
        base,
        &format!("/apis/v2beta1/experiments/{}:archive", archived["experiment_id"].as_str().unwrap()),
        Value::Null,
    )
    .await;
    run_id
}

fn status(storage: &Storage) -> Value {
    let output = storage.weir(&["storage", "status", "--output", "json"]);
    ok(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn backup_and_restore_move_a_deployment_between_backends() {
    let source = Storage::new(Dialect::Sqlite);
    let weir = Weir::start(&source);
    let run_id = populate(&weir).await;
    // Enough finished runs that every large table crosses the backup's chunks of 500 rows.
    {
        let experiment = get(&weir.base, &format!("/apis/v2beta1/runs/{run_id}")).await["experiment_id"].clone();
        let store = SqlStore::connect(&source.db.url, &ConnectSettings::default()).await.unwrap();
        let mut runs = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..1_200 {
            let mut r = weir_store::testsuite::run(experiment.as_str().unwrap(), &format!("bulk-{i}"), 1_000 + i);
            r.state = weir_store::RuntimeState::Succeeded;
            tasks.push(weir_store::testsuite::task(&r.id, "step", weir_store::TaskKind::Dag, r.created_at));
            runs.push(r);
        }
        store.bulk_load(&runs, &tasks).await.unwrap();
        store.close().await;
    }
    let before = listing(&weir, &source, &run_id).await;
    assert_eq!(before["contents"], json!(["bytes to keep"]));
    assert!(before["runs"]["total_size"].as_i64().unwrap() > 1_200, "{}", before["runs"]["total_size"]);
    let live = status(&source);
    assert_eq!(live["servers"].as_array().unwrap().len(), 1, "a serving weir holds a lease");
    weir.stop();
    assert!(status(&source)["servers"].as_array().unwrap().is_empty(), "a clean stop releases the lease");

    let archive = source.data_dir.path().join("backup.tar.gz");
    ok(&source.weir(&["storage", "backup", "-o", archive.to_str().unwrap()]));

    // SQLite + folder -> PostgreSQL + S3.
    let target = Storage::new(Dialect::Postgres);
    ok(&target.weir(&["storage", "restore", "-i", archive.to_str().unwrap()]));
    assert_eq!(status(&target)["metadata"]["identity"], status(&source)["metadata"]["identity"]);
    let weir = Weir::start(&target);
    assert_eq!(listing(&weir, &target, &run_id).await, before);
    weir.stop();
    // Restoring again is refused: the storage is no longer empty.
    let again = target.weir(&["storage", "restore", "-i", archive.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // And back: PostgreSQL + S3 -> SQLite + folder.
    let second = target.data_dir.path().join("second.tar.gz");
    ok(&target.weir(&["storage", "backup", "-o", second.to_str().unwrap()]));
    let back = Storage::new(Dialect::Sqlite);
    ok(&back.weir(&["storage", "restore", "-i", second.to_str().unwrap()]));
    let weir = Weir::start(&back);
    assert_eq!(listing(&weir, &back, &run_id).await, before);
    // New runs work on the restored storage.
    let run =
        post(&weir.base, "/apis/v2beta1/runs", json!({"display_name": "after", "pipeline_spec": spec("dataset")}))
            .await;
    let new_run = run["run_id"].as_str().unwrap().to_string();
    eventually("a new run on restored storage", Duration::from_secs(60), || async {
        (get(&weir.base, &format!("/apis/v2beta1/runs/{new_run}")).await["state"] == "SUCCEEDED").then_some(())
    })
    .await;
    weir.stop();

    // A damaged archive is refused before anything is written.
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let damaged = source.data_dir.path().join("damaged.tar.gz");
    std::fs::write(&damaged, bytes).unwrap();
    let empty = Storage::new(Dialect::Sqlite);
    let refused = empty.weir(&["storage", "restore", "-i", damaged.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert_eq!(status(&empty)["metadata"]["identity"], Value::Null);

    // An archive whose checksums agree but whose rows do not fit the schema is refused before
    // any object or row is written (the rows are checked in a pass of their own).
    let ill_typed = source.data_dir.path().join("ill-typed.tar.gz");
    rewrite_table(&archive, &ill_typed, "runs", |row| row[13] = json!("yesterday"));
    let refused = empty.weir(&["storage", "restore", "-i", ill_typed.to_str().unwrap()]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("does not fit runs.created_at"), "{stderr}");
    assert_eq!(status(&empty)["metadata"]["identity"], Value::Null);
    assert!(
        !empty.data_dir.path().join("artifacts").exists() || walk(&empty.data_dir.path().join("artifacts")).is_empty()
    );

    for storage in [source, target, back, empty] {
        storage.db.drop_database().await;
    }
}

#[tokio::test]
async fn check_upgrade_and_purge() {
    let storage = Storage::new(Dialect::Sqlite);
    let weir = Weir::start(&storage);
    let run_id = populate(&weir).await;
    weir.stop();
    let check = storage.weir(&["storage", "check", "--output", "json"]);
    ok(&check);
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert!(report["referenced"].as_u64().unwrap() >= 3, "{report}");

    // A missing artifact file is a problem; a stray object is an orphan.
    let artifacts = storage.data_dir.path().join("artifacts");
    let artifact_file = walk(&artifacts).into_iter().find(|p| p.ends_with("data")).expect("the dataset file");
    let saved = std::fs::read(&artifact_file).unwrap();
    std::fs::remove_file(&artifact_file).unwrap();
    std::fs::write(artifacts.join("stray.bin"), b"x").unwrap();
    let check = storage.weir(&["storage", "check", "--output", "json"]);
    assert_eq!(check.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["missing"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["orphans"], json!(["stray.bin"]));
    // The report stays with the storage for the UI's storage page, and is no orphan itself.
    let last: Value = serde_json::from_slice(&std::fs::read(artifacts.join(".weir/last-check.json")).unwrap()).unwrap();
    assert_eq!(
        (last["ok"].clone(), last["missing"].clone(), last["orphans"].clone()),
        (json!(false), json!(1), json!(1))
    );
    // A backup refuses to capture metadata without its objects.
    let refused =
        storage.weir(&["storage", "backup", "-o", storage.data_dir.path().join("b.tar.gz").to_str().unwrap()]);
    assert!(!refused.status.success());
    std::fs::write(&artifact_file, saved).unwrap();

    // Upgrade: with the schema at head there is nothing to do; an older schema is refused by
    // the server, planned by --dry-run, refused while a weir holds a live lease, then applied
    // after a backup, and a second run is a no-op.
    assert!(ok(&storage.weir(&["storage", "upgrade"])).contains("nothing to do"));
    let store = SqlStore::connect(&storage.db.url, &ConnectSettings::default()).await.unwrap();
    let head = weir_store_sql::migration_versions(Dialect::Sqlite).into_iter().max().unwrap();
    // Back to the previous schema version (as a weir of that version left it), with a weir
    // still serving it.
    weir_store_sql::testing::undo_head_migration(&storage.db.url).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    weir_store_sql::testing::execute_raw(
        &storage.db.url,
        &format!("INSERT INTO server_leases VALUES ('old', 'prod', 'host-a', 1, '0.0.9', {}, {now}, {now})", head - 1),
    )
    .await;
    let before_refusal = store.export_snapshot().await.unwrap();
    let server = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["server", "--listen", "127.0.0.1:0"])
        .args(storage.flags())
        .output()
        .unwrap();
    assert_eq!(server.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&server.stderr).contains("weir storage upgrade"));
    assert_eq!(store.export_snapshot().await.unwrap(), before_refusal, "a refusal changes nothing");
    assert!(ok(&storage.weir(&["storage", "upgrade", "--dry-run"])).contains("dry run"));
    let refused = storage.weir(&["storage", "upgrade"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("host-a"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(store.export_snapshot().await.unwrap(), before_refusal, "refusals change nothing");
    assert!(!storage.data_dir.path().join("backups").exists(), "no backup without an upgrade");
    // The old weir stops and releases its lease.
    weir_store_sql::testing::execute_raw(&storage.db.url, "DELETE FROM server_leases").await;
    let upgraded = ok(&storage.weir(&["storage", "upgrade"]));
    assert!(
        upgraded.contains("backup taken") && upgraded.contains(&format!("upgraded to schema version {head}")),
        "{upgraded}"
    );
    let backups: Vec<_> = std::fs::read_dir(storage.data_dir.path().join("backups")).unwrap().collect();
    assert_eq!(backups.len(), 1);
    assert!(ok(&storage.weir(&["storage", "upgrade"])).contains("nothing to do"));
    let weir = Weir::start(&storage);
    assert_eq!(get(&weir.base, &format!("/apis/v2beta1/runs/{run_id}")).await["state"], "SUCCEEDED");
    weir.stop();

    // Purge needs --yes and the deployment's name.
    for args in [
        vec!["storage", "purge"],
        vec!["storage", "purge", "--yes"],
        vec!["storage", "purge", "--yes", "--confirm-name", "other"],
    ] {
        let refused = storage.weir(&args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
    }
    assert!(status(&storage)["metadata"]["identity"].is_string(), "refused purges delete nothing");
    // The default name proves nothing about which storage is meant: the identity does.
    let refused = storage.weir(&["storage", "purge", "--yes", "--confirm-name", "weir"]);
    assert_eq!(refused.status.code(), Some(2));
    let identity = status(&storage)["metadata"]["identity"].as_str().unwrap().to_string();
    ok(&storage.weir(&["storage", "purge", "--yes", "--confirm-name", &identity]));
    let after = status(&storage);
    assert_eq!(after["metadata"]["identity"], Value::Null);
    assert_eq!(after["artifacts"]["objects"], 0, "{after}");
    store.close().await;
    storage.db.drop_database().await;
}

/// Copies a backup archive with every row of `table` changed by `change`, its checksums and
/// manifest recomputed so the archive itself is consistent.
fn rewrite_table(from: &std::path::Path, to: &std::path::Path, table: &str, change: impl Fn(&mut Vec<Value>)) {
    use sha2::Digest;
    use std::io::Read;
    let hex = |bytes: &[u8]| sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(from).unwrap()));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        entries.push((name, bytes));
    }
    let path = format!("weir-backup/metadata/{table}.jsonl");
    let (_, data) = entries.iter_mut().find(|(n, _)| *n == path).unwrap();
    let text = String::from_utf8(data.clone()).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for line in lines {
        let mut row: Vec<Value> = serde_json::from_str(line).unwrap();
        change(&mut row);
        out.push_str(&format!("{}\n", serde_json::to_string(&row).unwrap()));
    }
    *data = out.into_bytes();
    let sum = hex(data);
    let (_, manifest) = entries.iter_mut().find(|(n, _)| n == "weir-backup/manifest.json").unwrap();
    let mut parsed: Value = serde_json::from_slice(manifest).unwrap();
    parsed["tables"][table]["sha256"] = json!(sum);
    *manifest = serde_json::to_vec_pretty(&parsed).unwrap();
    let manifest_sum = hex(manifest);
    entries.iter_mut().find(|(n, _)| n == "weir-backup/manifest.sha256").unwrap().1 = manifest_sum.into_bytes();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(to).unwrap(),
        flate2::Compression::fast(),
    ));
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, &name, bytes.as_slice()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Two upgrades started at once never interleave: one migrates, the other finds nothing to do
/// (a database-level lock on PostgreSQL and MySQL, a lock file beside a SQLite database).
async fn concurrent_upgrades(dialect: Dialect) {
    let storage = Storage::new(dialect);
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/schema-fixtures/v3/backup.tar.gz");
    ok(&storage.weir(&["storage", "restore", "-i", fixture.to_str().unwrap()]));
    // The version-3 fixture restores at version 3: upgrades have work to do.
    let pending: Vec<i64> = weir_store_sql::migration_versions(dialect).into_iter().filter(|v| *v > 3).collect();
    assert_eq!(status(&storage)["metadata"]["pending_migrations"], json!(pending));
    let head = *pending.last().unwrap();
    let spawn = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
        command
            .args(["storage", "upgrade"])
            .args(storage.flags())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", std::env::var("WEIR_TEST_S3_ENDPOINT").unwrap_or_default())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let said = format!("{}{}", String::from_utf8_lossy(&a.stderr), String::from_utf8_lossy(&b.stderr));
    assert!(a.status.success() && b.status.success(), "{said}");
    // Every pending migration was applied exactly once, by one of the two.
    let mut applied: Vec<i64> = said
        .lines()
        .filter_map(|line| line.split_once("(applied here: [").map(|(_, rest)| rest.trim_end_matches("])").to_string()))
        .flat_map(|list| list.split(", ").filter_map(|v| v.parse::<i64>().ok()).collect::<Vec<_>>())
        .collect();
    let nothing = said.matches("nothing to do").count();
    assert_eq!(said.matches("(applied here: [").count() + nothing, 2, "{said}");
    applied.sort();
    assert_eq!(applied, pending, "{said}");
    let after = status(&storage);
    assert_eq!(after["metadata"]["schema_version"], json!(head));
    assert_eq!(after["metadata"]["pending_migrations"], json!([]));
    ok(&storage.weir(&["storage", "check"]));
    storage.db.drop_database().await;
}

#[tokio::test]
async fn sqlite_upgrades_never_interleave() {
    concurrent_upgrades(Dialect::Sqlite).await;
}

#[tokio::test]
async fn postgres_upgrades_never_interleave() {
    concurrent_upgrades(Dialect::Postgres).await;
}

#[tokio::test]
async fn mariadb_upgrades_never_interleave() {
    concurrent_upgrades(Dialect::MySql).await;
}

/// An archive whose entries climb out of the backup (`../`) is refused before anything is
/// written, so a crafted backup cannot write outside the stores.
#[tokio::test]
async fn restore_refuses_entries_that_leave_the_archive() {
    let storage = Storage::new(Dialect::Sqlite);
    let evil = storage.data_dir.path().join("evil.tar.gz");
    {
        let file = std::fs::File::create(&evil).unwrap();
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        let name = b"weir-backup/objects/../../../../tmp/weir-escaped";
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        builder.into_inner().unwrap().finish().unwrap();
    }
    let refused = storage.weir(&["storage", "restore", "-i", evil.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unsafe entry"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!std::path::Path::new("/tmp/weir-escaped").exists());
    assert_eq!(status(&storage)["metadata"]["identity"], Value::Null, "nothing restored");
    storage.db.drop_database().await;
}

/// One server per storage: a second `weir server` is refused while the first serves (two
/// engines would run the same steps twice); a weir killed with SIGKILL does not hold the
/// storage (its lease names a process that is gone), and one stopped normally releases it.
#[tokio::test]
async fn one_server_per_storage() {
    let storage = Storage::new(Dialect::Sqlite);
    let first = Weir::start(&storage);
    let second = storage.weir(&["server", "--listen", "127.0.0.1:0"]);
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("another weir serves this storage"), "{said}");
    assert!(get(&first.base, "/apis/v2beta1/healthz").await["commit_sha"].is_string(), "the first keeps serving");
    first.kill9();
    let again = Weir::start(&storage);
    again.stop();
    Weir::start(&storage).stop();
    storage.db.drop_database().await;
}

/// Purge asks for the name the storage was initialised under (or its identity), not the
/// name the caller happens to pass: `--name x --confirm-name x` purges nothing of `prod`.
#[tokio::test]
async fn purge_asks_for_the_storage_s_own_name() {
    let storage = Storage::new(Dialect::Sqlite);
    Weir::start_with(&storage, &["--name", "prod"]).stop();
    let report = status(&storage);
    assert_eq!(report["metadata"]["deployment"], "prod", "{report}");
    for (name, confirm) in [("weir", "weir"), ("other", "other"), ("prod", "weir")] {
        let refused = storage.weir(&["storage", "purge", "--yes", "--name", name, "--confirm-name", confirm]);
        assert_eq!(refused.status.code(), Some(2), "--name {name} --confirm-name {confirm}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains("--confirm-name prod"));
    }
    assert!(status(&storage)["metadata"]["identity"].is_string(), "refused purges delete nothing");
    ok(&storage.weir(&["storage", "purge", "--yes", "--confirm-name", "prod"]));
    assert_eq!(status(&storage)["metadata"]["identity"], Value::Null);
    storage.db.drop_database().await;
}

/// `upgrade: auto` (here from the config file): a weir started on an older schema takes a
/// backup, migrates and serves, with everything the older weir stored; `manual` (the default)
/// refuses and names `weir storage upgrade`. On every backend pair.
async fn auto_upgrade_at_start(dialect: Dialect) {
    let storage = Storage::new(dialect);
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/schema-fixtures/v5/backup.tar.gz");
    ok(&storage.weir(&["storage", "restore", "-i", fixture.to_str().unwrap()]));
    let before = status(&storage);
    assert_eq!(before["metadata"]["schema_version"], json!(5), "{before}");
    let refused = storage.weir(&["server", "--listen", "127.0.0.1:0"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("weir storage upgrade"));
    assert_eq!(status(&storage)["metadata"]["schema_version"], json!(5), "a refused start changes nothing");

    let config = storage.data_dir.path().join("weir.yaml");
    std::fs::write(&config, "version: 1\nupgrade: auto\n").unwrap();
    let weir = Weir::start_with(&storage, &["--config", config.to_str().unwrap()]);
    let runs = get(&weir.base, "/apis/v2beta1/runs?page_size=100").await;
    assert!(
        runs["runs"].as_array().unwrap().iter().any(|r| r["display_name"] == "finished" && r["state"] == "SUCCEEDED"),
        "{runs}"
    );
    weir.stop();
    let after = status(&storage);
    let head = *weir_store_sql::migration_versions(dialect).iter().max().unwrap();
    assert_eq!(after["metadata"]["schema_version"], json!(head), "{after}");
    assert_eq!(after["metadata"]["pending_migrations"], json!([]));
    // The backup goes beside the data it protects: the data folder for a local store, the
    // object store itself (under .weir/backups/) for a remote one.
    let listed = storage.weir(&["storage", "backups", "--output", "json"]);
    ok(&listed);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let stored = listed["backups"].as_array().unwrap();
    let name = if dialect == Dialect::Sqlite {
        assert!(stored.is_empty(), "{listed}");
        let backups: Vec<_> = std::fs::read_dir(storage.data_dir.path().join("backups")).unwrap().flatten().collect();
        assert_eq!(backups.len(), 1, "the upgrade took its backup first");
        backups[0].file_name().to_string_lossy().to_string()
    } else {
        assert!(!storage.data_dir.path().join("backups").exists(), "no local copy is left behind");
        assert_eq!(stored.len(), 1, "the upgrade took its backup first, into the store: {listed}");
        assert!(stored[0]["size"].as_u64().unwrap() > 0, "{listed}");
        stored[0]["name"].as_str().unwrap().to_string()
    };
    assert!(name.starts_with("weir-backup-v5-"), "{name}");
    ok(&storage.weir(&["storage", "check"]));
    if dialect != Dialect::Sqlite {
        // The stored backup is fetched and restores the pre-upgrade data on other storage.
        let fetched = storage.data_dir.path().join("fetched.tar.gz");
        ok(&storage.weir(&["storage", "backups", "--get", &name, "-o", fetched.to_str().unwrap()]));
        let elsewhere = Storage::new(Dialect::Sqlite);
        ok(&elsewhere.weir(&["storage", "restore", "-i", fetched.to_str().unwrap()]));
        assert_eq!(status(&elsewhere)["metadata"]["schema_version"], json!(5));
        assert_eq!(status(&elsewhere)["metadata"]["rows"], before["metadata"]["rows"]);
        let missing = storage.weir(&["storage", "backups", "--get", "no-such.tar.gz", "-o", fetched.to_str().unwrap()]);
        assert!(!missing.status.success());
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no backup named no-such.tar.gz"));
        elsewhere.db.drop_database().await;
    }
    storage.db.drop_database().await;
}

#[tokio::test]
async fn sqlite_upgrade_auto_migrates_at_start() {
    auto_upgrade_at_start(Dialect::Sqlite).await;
}

#[tokio::test]
async fn postgres_upgrade_auto_migrates_at_start() {
    auto_upgrade_at_start(Dialect::Postgres).await;
}

#[tokio::test]
async fn mariadb_upgrade_auto_migrates_at_start() {
    auto_upgrade_at_start(Dialect::MySql).await;
}
