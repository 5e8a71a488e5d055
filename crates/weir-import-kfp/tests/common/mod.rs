//! KFP-shaped databases built here from KFP's own table shapes
//! (`backend/src/apiserver/model/*.go`: 2.17's GORM v2 types, 2.0's GORM v1 ones), seeded with
//! rows of every kind an import must recognise, on MariaDB and PostgreSQL, with a bucket on the
//! test S3 server holding the specs KFP 1.x kept only as objects.
#![allow(dead_code)]

use std::str::FromStr;

use sqlx::{ConnectOptions, Connection};
use weir_artifacts::{ArtifactStore, S3Settings};
use weir_import_kfp::{apply, PlanOptions, Report, Target};
use weir_store::{MetadataStore, StoreAdmin};
use weir_store_sql::testing::TestDatabase;
use weir_store_sql::{ConnectSettings, Dialect, SqlStore};

/// The time imports run at.
pub const NOW: i64 = 1_800_000_000_000;

/// What an import reads: KFP's database, its ML Metadata and bucket (runs in flight allowed).
pub fn options(fixture: &Fixture, metadb: &Fixture, objects: &ArtifactStore) -> PlanOptions {
    PlanOptions {
        database_url: fixture.url.clone(),
        objects: objects.clone(),
        allow_inflight: true,
        mlmd_url: Some(metadb.url.clone()),
        cache_url: None,
    }
}

/// A new weir's storage, imported into: a database of `dialect` and a folder artifact store.
pub struct Weir {
    pub db: TestDatabase,
    pub store: SqlStore,
    pub artifacts: ArtifactStore,
    _folder: tempfile::TempDir,
}

impl Weir {
    pub async fn new(dialect: Dialect) -> Self {
        let db = TestDatabase::new(dialect);
        let store = SqlStore::connect(&db.url, &ConnectSettings::default()).await.unwrap();
        store.migrate().await.unwrap();
        let folder = tempfile::tempdir().unwrap();
        let artifacts =
            ArtifactStore::open(&format!("file://{}", folder.path().display()), &S3Settings::default()).unwrap();
        Self { db, store, artifacts, _folder: folder }
    }

    /// `weir import kfp --apply` into this weir.
    pub async fn import(&self, options: &PlanOptions, max_rows: Option<u64>, copy_artifacts: bool) -> Report {
        let progress = |_: &str, _: u64| {};
        let target = Target {
            store: &self.store as &dyn MetadataStore,
            artifacts: &self.artifacts,
            enable_schedules: false,
            now_ms: NOW,
            progress: &progress,
            max_rows,
            copy_artifacts,
        };
        apply(options, &target).await.unwrap()
    }

    pub async fn drop(self) {
        self.store.close().await;
        self.db.drop_database().await;
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Db {
    Maria,
    Postgres,
}

/// KFP's table shapes by the release that changed them (docs/import-kfp.md, "Variants"):
/// GORM v1 column types until 2.14, v2 since 2.15.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Shape {
    /// 2.0-2.3: `run_details.State`, no last-run column.
    V2_0,
    /// `experiments.LastRunCreatedAtInSec`.
    V2_4,
    /// `run_details.WorkflowSpecManifest` nullable.
    V2_5,
    /// `DisplayName` columns.
    V2_14,
    /// GORM v2: ids `varchar(64)`/`varchar(191)`.
    V2_15,
    /// `pipeline_tags`, `run_details.PluginsInput`.
    V2_17,
}

impl Shape {
    pub const ALL: [Shape; 6] = [Shape::V2_0, Shape::V2_4, Shape::V2_5, Shape::V2_14, Shape::V2_15, Shape::V2_17];

    /// What the importer calls the shape.
    pub fn variant(self) -> &'static str {
        match self {
            Shape::V2_0 => "2.0-2.3",
            Shape::V2_4 => "2.4",
            Shape::V2_5 => "2.5",
            Shape::V2_14 => "2.14",
            Shape::V2_15 => "2.15-2.16",
            Shape::V2_17 => "2.17",
        }
    }
}

pub struct Fixture {
    pub db: Db,
    server: String,
    name: String,
    pub url: String,
}

impl Fixture {
    pub async fn create(db: Db, shape: Shape) -> Self {
        let fixture = Self::empty(db).await;
        for statement in ddl(db, shape) {
            fixture.execute(&statement).await;
        }
        fixture
    }

    /// A new, empty database.
    pub async fn empty(db: Db) -> Self {
        let name = format!("kfp_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let (server, url) = match db {
            Db::Maria => {
                let server =
                    std::env::var("WEIR_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
                (server.clone(), format!("{server}/{name}"))
            }
            Db::Postgres => {
                let server =
                    std::env::var("WEIR_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432".into());
                (server.clone(), format!("{server}/{name}"))
            }
        };
        let fixture = Self { db, server, name, url };
        fixture.admin(&format!("CREATE DATABASE {}", fixture.name)).await;
        fixture
    }

    pub async fn admin(&self, statement: &str) {
        match self.db {
            Db::Maria => {
                let mut c = sqlx::mysql::MySqlConnectOptions::from_str(&self.server).unwrap().connect().await.unwrap();
                sqlx::raw_sql(statement).execute(&mut c).await.unwrap();
            }
            Db::Postgres => {
                let mut c = sqlx::postgres::PgConnectOptions::from_str(&self.server)
                    .unwrap()
                    .database("postgres")
                    .connect()
                    .await
                    .unwrap();
                sqlx::raw_sql(statement).execute(&mut c).await.unwrap();
            }
        }
    }

    pub async fn execute(&self, statement: &str) {
        let outcome = match self.db {
            Db::Maria => {
                // Double quotes around identifiers, as in PostgreSQL (and the SQL standard).
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
                    .execute(&mut c)
                    .await
                    .unwrap();
                sqlx::raw_sql(statement).execute(&mut c).await.map(|_| ())
            }
            Db::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(statement).execute(&mut c).await.map(|_| ())
            }
        };
        outcome.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// A checksum of every table's rows: to show a plan wrote nothing.
    pub async fn dump(&self) -> Vec<String> {
        let mut out = Vec::new();
        for table in ["pipelines", "pipeline_versions", "experiments", "run_details", "jobs", "resource_references"] {
            let value = match self.db {
                Db::Maria => {
                    let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                    let row: (String, Option<i64>) =
                        sqlx::query_as(&format!("CHECKSUM TABLE `{table}`")).fetch_one(&mut c).await.unwrap();
                    format!("{:?}", row.1)
                }
                Db::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                    let sql = format!("SELECT count(*)::text || ' ' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM \"{table}\" t");
                    sqlx::query_scalar::<_, String>(&sql).fetch_one(&mut c).await.unwrap()
                }
            };
            out.push(format!("{table}: {value}"));
        }
        out
    }

    pub async fn drop(&self) {
        match self.db {
            Db::Maria => self.admin(&format!("DROP DATABASE IF EXISTS {}", self.name)).await,
            Db::Postgres => self.admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await,
        }
    }
}

/// A table: its name, its columns with their types, and its primary key's columns.
type Table = (&'static str, Vec<(&'static str, String)>, &'static str);

/// KFP's tables, in the columns and types its models give them.
fn ddl(db: Db, shape: Shape) -> Vec<String> {
    let long = match db {
        Db::Maria => "longtext",
        Db::Postgres => "text",
    };
    let id = |v2: &str| if shape >= Shape::V2_15 { v2.to_string() } else { "varchar(255)".to_string() };
    let mut tables: Vec<Table> = vec![
        (
            "pipelines",
            vec![
                ("UUID", id("varchar(64)")),
                ("CreatedAtInSec", "bigint NOT NULL".into()),
                ("Name", "varchar(255) NOT NULL".into()),
                ("Description", format!("{long} NOT NULL")),
                ("Parameters", long.into()),
                ("Status", "varchar(255) NOT NULL".into()),
                ("DefaultVersionId", "varchar(255)".into()),
                ("Namespace", "varchar(63)".into()),
            ],
            "UUID",
        ),
        (
            "pipeline_versions",
            vec![
                ("UUID", id("varchar(191)")),
                ("CreatedAtInSec", "bigint NOT NULL".into()),
                ("Name", "varchar(255) NOT NULL".into()),
                ("Parameters", format!("{long} NOT NULL")),
                ("PipelineId", "varchar(255) NOT NULL".into()),
                ("Status", "varchar(255) NOT NULL".into()),
                ("CodeSourceUrl", "varchar(255)".into()),
                ("Description", long.into()),
                ("PipelineSpec", format!("{long} NOT NULL")),
                ("PipelineSpecURI", format!("{long} NOT NULL")),
            ],
            "UUID",
        ),
        (
            "experiments",
            vec![
                ("UUID", id("varchar(191)")),
                ("Name", "varchar(255) NOT NULL".into()),
                ("Description", "varchar(255) NOT NULL".into()),
                ("CreatedAtInSec", "bigint NOT NULL".into()),
                ("Namespace", "varchar(255) NOT NULL".into()),
                ("StorageState", "varchar(255) NOT NULL".into()),
            ],
            "UUID",
        ),
        ("default_experiments", vec![("DefaultExperimentId", id("varchar(191)"))], "DefaultExperimentId"),
        (
            "run_details",
            vec![
                ("UUID", id("varchar(191)")),
                ("DisplayName", "varchar(255) NOT NULL".into()),
                ("Name", "varchar(255) NOT NULL".into()),
                ("Description", "varchar(255) NOT NULL".into()),
                ("Namespace", "varchar(255) NOT NULL".into()),
                ("ExperimentUUID", "varchar(255) NOT NULL".into()),
                ("JobUUID", "varchar(255)".into()),
                ("StorageState", "varchar(255) NOT NULL".into()),
                ("ServiceAccount", "varchar(255) NOT NULL".into()),
                ("PipelineId", "varchar(255) NOT NULL".into()),
                ("PipelineVersionId", "varchar(255)".into()),
                ("PipelineName", "varchar(255) NOT NULL".into()),
                ("PipelineSpecManifest", long.into()),
                // NOT NULL until 2.4 (GORM v1 tags), nullable since 2.5.
                ("WorkflowSpecManifest", if shape >= Shape::V2_5 { long.into() } else { format!("{long} NOT NULL") }),
                ("Parameters", long.into()),
                ("RuntimeParameters", long.into()),
                ("PipelineRoot", long.into()),
                ("CreatedAtInSec", "bigint NOT NULL".into()),
                ("ScheduledAtInSec", "bigint DEFAULT 0".into()),
                ("FinishedAtInSec", "bigint DEFAULT 0".into()),
                ("Conditions", "varchar(255) NOT NULL".into()),
                ("State", "varchar(255)".into()),
                ("StateHistory", long.into()),
                ("PipelineRuntimeManifest", format!("{long} NOT NULL")),
                ("WorkflowRuntimeManifest", format!("{long} NOT NULL")),
            ],
            "UUID",
        ),
        (
            "jobs",
            vec![
                ("UUID", id("varchar(191)")),
                ("DisplayName", "varchar(255) NOT NULL".into()),
                ("Name", "varchar(255) NOT NULL".into()),
                ("Namespace", "varchar(255) NOT NULL".into()),
                ("ServiceAccount", "varchar(255) NOT NULL".into()),
                ("Description", "varchar(255) NOT NULL".into()),
                ("MaxConcurrency", "bigint NOT NULL".into()),
                ("NoCatchup", "boolean NOT NULL".into()),
                ("CreatedAtInSec", "bigint NOT NULL".into()),
                ("UpdatedAtInSec", "bigint DEFAULT 0".into()),
                ("Enabled", "boolean NOT NULL".into()),
                ("ExperimentUUID", "varchar(255) NOT NULL".into()),
                ("CronScheduleStartTimeInSec", "bigint".into()),
                ("CronScheduleEndTimeInSec", "bigint".into()),
                ("Schedule", "varchar(255)".into()),
                ("PeriodicScheduleStartTimeInSec", "bigint".into()),
                ("PeriodicScheduleEndTimeInSec", "bigint".into()),
                ("IntervalSecond", "bigint".into()),
                ("PipelineId", "varchar(255) NOT NULL".into()),
                ("PipelineVersionId", "varchar(255)".into()),
                ("PipelineName", "varchar(255) NOT NULL".into()),
                ("PipelineSpecManifest", long.into()),
                ("WorkflowSpecManifest", long.into()),
                ("Parameters", long.into()),
                ("RuntimeParameters", long.into()),
                ("PipelineRoot", long.into()),
                ("Conditions", "varchar(255) NOT NULL".into()),
            ],
            "UUID",
        ),
        (
            "resource_references",
            vec![
                ("ResourceUUID", "varchar(255) NOT NULL".into()),
                ("ResourceType", "varchar(255) NOT NULL".into()),
                ("ReferenceUUID", "varchar(255) NOT NULL".into()),
                ("ReferenceName", "varchar(255) NOT NULL".into()),
                ("ReferenceType", "varchar(255) NOT NULL".into()),
                ("Relationship", "varchar(255) NOT NULL".into()),
                ("Payload", format!("{long} NOT NULL")),
            ],
            "ResourceUUID\", \"ResourceType\", \"ReferenceType",
        ),
    ];
    if shape >= Shape::V2_4 {
        tables[2].1.push(("LastRunCreatedAtInSec", "bigint NOT NULL".into()));
    }
    if shape >= Shape::V2_14 {
        tables[0].1.push(("DisplayName", "varchar(255) NOT NULL".into()));
        tables[1].1.push(("DisplayName", "varchar(255) NOT NULL".into()));
    }
    if shape >= Shape::V2_17 {
        tables[4].1.push(("PluginsInput", long.into()));
        tables.push((
            "pipeline_tags",
            vec![
                ("PipelineId", "varchar(64) NOT NULL".into()),
                ("TagKey", "varchar(63) NOT NULL".into()),
                ("TagValue", "varchar(63) NOT NULL".into()),
            ],
            "PipelineId\", \"TagKey",
        ));
    }
    tables
        .into_iter()
        .map(|(table, columns, key)| {
            let columns: Vec<String> = columns
                .iter()
                .map(|(c, t)| {
                    let t =
                        if *c == "UUID" || *c == "DefaultExperimentId" { format!("{t} NOT NULL") } else { t.clone() };
                    format!("\"{c}\" {t}")
                })
                .collect();
            format!("CREATE TABLE \"{table}\" ({}, PRIMARY KEY (\"{key}\"))", columns.join(", "))
        })
        .collect()
}

pub const IR: &str =
    "pipelineInfo:\n  name: train\nroot:\n  dag:\n    tasks: {}\nschemaVersion: 2.1.0\nsdkVersion: kfp-2.17.3\n";
pub const ARGO: &str =
    "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: old-\nspec:\n  entrypoint: main\n";

fn q(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Rows of every kind the report must tell apart, in the columns `shape` has.
pub async fn seed(fixture: &Fixture, shape: Shape) {
    let display_names = shape >= Shape::V2_14;
    let last_run = shape >= Shape::V2_4;
    let pipeline = |id: &str, name: &str, status: &str| {
        if display_names {
            format!(
                "INSERT INTO \"pipelines\" (\"UUID\", \"CreatedAtInSec\", \"Name\", \"DisplayName\", \"Description\", \"Status\", \"Namespace\") \
                 VALUES ({}, 1700000000, {}, {}, 'd', {}, '')",
                q(id), q(name), q(&name.to_uppercase()), q(status)
            )
        } else {
            format!(
                "INSERT INTO \"pipelines\" (\"UUID\", \"CreatedAtInSec\", \"Name\", \"Description\", \"Status\", \"Namespace\") \
                 VALUES ({}, 1700000000, {}, 'd', {}, '')",
                q(id), q(name), q(status)
            )
        }
    };
    let version = |id: &str, pipeline: &str, spec: &str| {
        let display = if display_names { ", \"DisplayName\"" } else { "" };
        let display_value = if display_names { format!(", {}", q(id)) } else { String::new() };
        format!(
            "INSERT INTO \"pipeline_versions\" (\"UUID\", \"CreatedAtInSec\", \"Name\"{display}, \"Parameters\", \"PipelineId\", \"Status\", \
             \"Description\", \"PipelineSpec\", \"PipelineSpecURI\") VALUES ({}, 1700000100, {}{display_value}, '', {}, 'READY', '', {}, '')",
            q(id), q(id), q(pipeline), q(spec)
        )
    };
    let mut statements = vec![
        pipeline("p1", "train", "READY"),
        pipeline("p2", "score", "READY"),
        pipeline("p3", "half-deleted", "DELETING"),
        version("v1", "p1", IR),
        version("v2", "p1", ""),
        version("v3", "p2", ""),
        version("v4", "p-gone", IR),
        version("v5", "p2", ARGO),
        format!("INSERT INTO \"experiments\" (\"UUID\", \"Name\", \"Description\", \"CreatedAtInSec\", \"Namespace\", \"StorageState\"{}) VALUES ('e1', 'Default', '', 1700000000, '', 'AVAILABLE'{})",
            if last_run { ", \"LastRunCreatedAtInSec\"" } else { "" }, if last_run { ", 0" } else { "" }),
        format!("INSERT INTO \"experiments\" (\"UUID\", \"Name\", \"Description\", \"CreatedAtInSec\", \"Namespace\", \"StorageState\"{}) VALUES ('e2', 'old', 'it''s old', 1600000000, '', 'STORAGESTATE_ARCHIVED'{})",
            if last_run { ", \"LastRunCreatedAtInSec\"" } else { "" }, if last_run { ", 0" } else { "" }),
        "INSERT INTO \"default_experiments\" (\"DefaultExperimentId\") VALUES ('e1')".into(),
        "INSERT INTO \"resource_references\" VALUES ('r2', 'Run', 'e2', 'old', 'Experiment', 'Owner', '{}')".into(),
    ];
    let run = |id: &str,
               experiment: &str,
               version: &str,
               state: Option<&str>,
               conditions: &str,
               v2spec: &str,
               v1spec: &str,
               params: &str| {
        format!(
            "INSERT INTO \"run_details\" (\"UUID\", \"DisplayName\", \"Name\", \"Description\", \"Namespace\", \"ExperimentUUID\", \"StorageState\", \
             \"ServiceAccount\", \"PipelineId\", \"PipelineVersionId\", \"PipelineName\", \"PipelineSpecManifest\", \"WorkflowSpecManifest\", \
             \"RuntimeParameters\", \"Parameters\", \"PipelineRoot\", \"CreatedAtInSec\", \"ScheduledAtInSec\", \"FinishedAtInSec\", \"Conditions\", \"State\", \
             \"StateHistory\", \"PipelineRuntimeManifest\", \"WorkflowRuntimeManifest\") VALUES ({}, {}, {}, '', '', {}, 'AVAILABLE', 'pipeline-runner', 'p1', {}, 'train', \
             {}, {}, {}, {}, '', 1700000200, 1700000200, 1700000300, {}, {}, '[{{\"UpdateTimeInSec\":1700000300,\"State\":\"SUCCEEDED\"}}]', '', '')",
            q(id), q(&format!("run {id}")), q(&format!("wf-{id}")), q(experiment), q(version), q(v2spec), q(v1spec),
            if params.starts_with('{') { q(params) } else { "NULL".into() },
            if params.starts_with('[') { q(params) } else { "NULL".into() },
            q(conditions), state.map(q).unwrap_or_else(|| "NULL".into())
        )
    };
    statements.extend([
        run("r1", "e1", "v1", Some("SUCCEEDED"), "Succeeded", IR, "", r#"{"text":"hi"}"#),
        // A KFP 1.x row: no v2 state, its experiment only in resource_references.
        run("r2", "", "v1", None, "Failed", IR, "", r#"{"text":"old"}"#),
        run("r3", "e1", "v1", Some("RUNNING"), "Running", IR, "", "{}"),
        run("r4", "e1", "v-gone", Some("SUCCEEDED"), "Succeeded", IR, "", "{}"),
        run("r5", "e-gone", "v1", Some("FAILED"), "Failed", IR, "", "{}"),
        run("r6", "e1", "", Some("SUCCEEDED"), "Succeeded", "", ARGO, r#"[{"name":"a","value":"1"}]"#),
    ]);
    let job = |id: &str, enabled: bool, cron: Option<&str>, interval: Option<i64>, spec: &str| {
        format!(
            "INSERT INTO \"jobs\" (\"UUID\", \"DisplayName\", \"Name\", \"Namespace\", \"ServiceAccount\", \"Description\", \"MaxConcurrency\", \"NoCatchup\", \
             \"CreatedAtInSec\", \"UpdatedAtInSec\", \"Enabled\", \"ExperimentUUID\", \"Schedule\", \"IntervalSecond\", \"PipelineId\", \"PipelineVersionId\", \
             \"PipelineName\", \"PipelineSpecManifest\", \"RuntimeParameters\", \"PipelineRoot\", \"Conditions\") VALUES ({}, {}, {}, '', 'pipeline-runner', '', 2, TRUE, \
             1700000000, 1700000000, {}, 'e1', {}, {}, 'p1', 'v1', 'train', {}, '{{\"text\":\"cron\"}}', '', 'ENABLED')",
            q(id), q(&format!("job {id}")), q(&format!("swf-{id}")), if enabled { "TRUE" } else { "FALSE" },
            cron.map(q).unwrap_or_else(|| "NULL".into()), interval.map(|i| i.to_string()).unwrap_or_else(|| "NULL".into()), q(spec)
        )
    };
    statements.push(job("j1", true, Some("0 0 * * * *"), None, IR));
    statements.push(job("j2", false, None, Some(3600), ""));
    for statement in statements {
        fixture.execute(&statement).await;
    }
}

/// A new bucket on the test S3 server, with the spec KFP 1.x kept for version v2.
pub async fn bucket() -> ArtifactStore {
    let settings = S3Settings {
        endpoint: Some(
            std::env::var("WEIR_TEST_S3_ENDPOINT").expect("WEIR_TEST_S3_ENDPOINT (scripts/test.sh starts one)"),
        ),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..Default::default()
    };
    let name = format!("kfp-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let store = ArtifactStore::open(&format!("s3://{name}"), &settings).unwrap();
    assert!(store.ensure_bucket().await.unwrap());
    store.put("pipelines/v2", bytes::Bytes::from_static(IR.as_bytes())).await.unwrap();
    store
}

/// An ML Metadata string property holding a struct, as MLMD keeps one
/// (`mlmd-struct::` + base64 of the serialized `google.protobuf.Struct`).
pub fn mlmd_struct(value: &serde_json::Value) -> String {
    use base64::Engine as _;
    use prost::Message as _;
    fn to_value(v: &serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match v {
            serde_json::Value::Null => Kind::NullValue(0),
            serde_json::Value::Bool(b) => Kind::BoolValue(*b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
            serde_json::Value::String(s) => Kind::StringValue(s.clone()),
            serde_json::Value::Array(items) => {
                Kind::ListValue(prost_types::ListValue { values: items.iter().map(to_value).collect() })
            }
            serde_json::Value::Object(map) => Kind::StructValue(to_struct(map)),
        };
        prost_types::Value { kind: Some(kind) }
    }
    fn to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
        prost_types::Struct { fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect() }
    }
    let encoded = to_struct(value.as_object().unwrap()).encode_to_vec();
    format!("mlmd-struct::{}", base64::engine::general_purpose::STANDARD.encode(encoded))
}

/// ML Metadata's tables (schema 10, the columns schema 7 shares).
pub fn mlmd_tables(db: Db) -> Vec<String> {
    let long = if db == Db::Maria { "longtext" } else { "text" };
    vec![
        format!("CREATE TABLE \"Type\" (\"id\" int PRIMARY KEY, \"name\" varchar(255) NOT NULL, \"version\" varchar(255), \"type_kind\" smallint NOT NULL, \"description\" {long})"),
        "CREATE TABLE \"Context\" (\"id\" int PRIMARY KEY, \"type_id\" int NOT NULL, \"name\" varchar(255) NOT NULL, \"create_time_since_epoch\" bigint NOT NULL DEFAULT 0, \"last_update_time_since_epoch\" bigint NOT NULL DEFAULT 0)".into(),
        "CREATE TABLE \"Association\" (\"id\" int PRIMARY KEY, \"context_id\" int NOT NULL, \"execution_id\" int NOT NULL)".into(),
        "CREATE TABLE \"Execution\" (\"id\" int PRIMARY KEY, \"type_id\" int NOT NULL, \"last_known_state\" int, \"name\" varchar(255), \"create_time_since_epoch\" bigint NOT NULL DEFAULT 0, \"last_update_time_since_epoch\" bigint NOT NULL DEFAULT 0)".into(),
        format!("CREATE TABLE \"ExecutionProperty\" (\"execution_id\" int NOT NULL, \"name\" varchar(255) NOT NULL, \"is_custom_property\" smallint NOT NULL, \"int_value\" int, \"double_value\" double precision, \"string_value\" {long}, PRIMARY KEY (\"execution_id\", \"name\", \"is_custom_property\"))"),
        "CREATE TABLE \"Event\" (\"id\" int PRIMARY KEY, \"artifact_id\" int NOT NULL, \"execution_id\" int NOT NULL, \"type\" int NOT NULL, \"milliseconds_since_epoch\" bigint)".into(),
        format!("CREATE TABLE \"EventPath\" (\"event_id\" int NOT NULL, \"is_index_step\" smallint NOT NULL, \"step_index\" int, \"step_key\" {long})"),
        format!("CREATE TABLE \"Artifact\" (\"id\" int PRIMARY KEY, \"type_id\" int NOT NULL, \"uri\" {long}, \"state\" int, \"name\" varchar(255), \"create_time_since_epoch\" bigint NOT NULL DEFAULT 0, \"last_update_time_since_epoch\" bigint NOT NULL DEFAULT 0)"),
        format!("CREATE TABLE \"ArtifactProperty\" (\"artifact_id\" int NOT NULL, \"name\" varchar(255) NOT NULL, \"is_custom_property\" smallint NOT NULL, \"int_value\" int, \"double_value\" double precision, \"string_value\" {long}, PRIMARY KEY (\"artifact_id\", \"name\", \"is_custom_property\"))"),
        "CREATE TABLE \"MLMDEnv\" (\"schema_version\" int PRIMARY KEY)".into(),
        // ML Metadata's own indexes (the same query config), which its readers rely on.
        "CREATE UNIQUE INDEX uniq_context_type_id_name ON \"Context\" (\"type_id\", \"name\")".into(),
        "CREATE UNIQUE INDEX uniq_association ON \"Association\" (\"context_id\", \"execution_id\")".into(),
        "CREATE INDEX idx_event_execution_id ON \"Event\" (\"execution_id\")".into(),
        "CREATE INDEX idx_eventpath_event_id ON \"EventPath\" (\"event_id\")".into(),
    ]
}

/// KFP's `metadb` in ML Metadata's schema 10 shape (the columns schema 7 shares), holding what
/// KFP's driver and launcher record for two runs: r1 ran a step that produced a model and
/// metrics (its log published as `executor-logs`, gzipped) and a step whose log only Argo
/// archived (a tgz under the workflow's folder); r2's first step was a cache hit on r1's.
pub async fn seed_mlmd(metadb: &Fixture, objects: &ArtifactStore, schema_version: i64) {
    for statement in mlmd_tables(metadb.db) {
        metadb.execute(&statement).await;
    }
    let mut rows: Vec<String> = vec![
        format!("INSERT INTO \"MLMDEnv\" VALUES ({schema_version})"),
        "INSERT INTO \"Type\" (\"id\", \"name\", \"type_kind\") VALUES (1, 'system.DAGExecution', 0), (2, 'system.ContainerExecution', 0), \
         (3, 'system.Model', 1), (4, 'system.Metrics', 1), (5, 'system.Artifact', 1), (6, 'system.PipelineRun', 2), (7, 'system.Pipeline', 2)".into(),
        "INSERT INTO \"Context\" (\"id\", \"type_id\", \"name\") VALUES (1, 7, 'train'), (2, 6, 'r1'), (3, 6, 'r2')".into(),
        // r1: root DAG 10, step 11 (train-step), step 12 (log-step); r2: root DAG 20, step 21 (cached).
        "INSERT INTO \"Execution\" VALUES (10, 1, 3, 'run/r1', 1700000200000, 1700000300000), (11, 2, 3, 'train-step', 1700000210000, 1700000250000), \
         (12, 2, 4, 'log-step', 1700000255000, 1700000290000), (20, 1, 3, 'run/r2', 1700000200000, 1700000300000), \
         (21, 2, 5, 'train-step', 1700000210000, 1700000211000)".into(),
        "INSERT INTO \"Association\" VALUES (1, 2, 10), (2, 2, 11), (3, 2, 12), (4, 3, 20), (5, 3, 21)".into(),
        "INSERT INTO \"Artifact\" (\"id\", \"type_id\", \"uri\", \"state\", \"create_time_since_epoch\") VALUES \
         (100, 3, 'minio://BUCKET/v2/artifacts/train/r1/train-step/salt/model', 2, 1700000250000), \
         (101, 4, 'minio://BUCKET/v2/artifacts/train/r1/train-step/salt/metrics', 2, 1700000250000), \
         (102, 5, 'minio://BUCKET/v2/artifacts/train/r1/train-step/salt/executor-logs', 2, 1700000250000)".into(),
        "INSERT INTO \"Event\" VALUES (1, 100, 11, 4, 1700000250000), (2, 101, 11, 4, 1700000250000), (3, 102, 11, 4, 1700000250000), \
         (4, 100, 12, 3, 1700000255000), (5, 100, 21, 4, 1700000211000)".into(),
        "INSERT INTO \"EventPath\" VALUES (1, 0, NULL, 'model'), (2, 0, NULL, 'metrics'), (3, 0, NULL, 'executor-logs'), (4, 0, NULL, 'model'), (5, 0, NULL, 'model')".into(),
    ];
    let property =
        |table: &str, owner: i64, name: &str, int: Option<i64>, double: Option<f64>, string: Option<String>| {
            format!(
                "INSERT INTO \"{table}\" VALUES ({owner}, {}, 1, {}, {}, {})",
                q(name),
                int.map(|v| v.to_string()).unwrap_or_else(|| "NULL".into()),
                double.map(|v| v.to_string()).unwrap_or_else(|| "NULL".into()),
                string.map(|v| q(&v)).unwrap_or_else(|| "NULL".into())
            )
        };
    for (execution, task, parent) in [(11, "train-step", 10), (12, "log-step", 10), (21, "train-step", 20)] {
        rows.push(property("ExecutionProperty", execution, "task_name", None, None, Some(task.into())));
        rows.push(property("ExecutionProperty", execution, "display_name", None, None, Some(task.into())));
        rows.push(property("ExecutionProperty", execution, "parent_dag_id", Some(parent), None, None));
        rows.push(property("ExecutionProperty", execution, "image", None, None, Some("python:3.11".into())));
        rows.push(property("ExecutionProperty", execution, "cache_fingerprint", None, None, Some("fp-train".into())));
        rows.push(property(
            "ExecutionProperty",
            execution,
            "inputs",
            None,
            None,
            Some(mlmd_struct(&serde_json::json!({"message": "hi", "n": 3}))),
        ));
    }
    rows.push(property(
        "ExecutionProperty",
        11,
        "outputs",
        None,
        None,
        Some(mlmd_struct(&serde_json::json!({"Output": "done"}))),
    ));
    rows.push(property("ExecutionProperty", 12, "pod_name", None, None, Some("wf-r1-log-step-123".into())));
    rows.push(property("ExecutionProperty", 10, "task_name", None, None, Some(String::new())));
    rows.push(property("ArtifactProperty", 100, "display_name", None, None, Some("model".into())));
    rows.push(property(
        "ArtifactProperty",
        100,
        "store_session_info",
        None,
        None,
        Some("{\"Provider\":\"minio\"}".into()),
    ));
    rows.push(property(
        "ArtifactProperty",
        100,
        "labels",
        None,
        None,
        Some(mlmd_struct(&serde_json::json!({"list": ["a", "b"]}))),
    ));
    rows.push(property("ArtifactProperty", 101, "display_name", None, None, Some("metrics".into())));
    rows.push(property("ArtifactProperty", 101, "accuracy", None, Some(0.9), None));
    let bucket = objects.url().trim_start_matches("s3://").split('/').next().unwrap().to_string();
    for row in rows {
        metadb.execute(&row.replace("BUCKET", &bucket)).await;
    }

    objects
        .put("v2/artifacts/train/r1/train-step/salt/model", bytes::Bytes::from_static(b"model weights"))
        .await
        .unwrap();
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"training...\naccuracy 0.9\n").unwrap();
    objects
        .put("v2/artifacts/train/r1/train-step/salt/executor-logs", bytes::Bytes::from(gz.finish().unwrap()))
        .await
        .unwrap();
    let mut tarball = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let text = b"2023-11-14T22:14:50Z stdout F it failed\n";
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tarball.append_data(&mut header, "main.log", &text[..]).unwrap();
    let mut tgz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    tgz.write_all(&tarball.into_inner().unwrap()).unwrap();
    objects
        .put("artifacts/wf-r1/2023/11/14/wf-r1-log-step-123/main.log", bytes::Bytes::from(tgz.finish().unwrap()))
        .await
        .unwrap();
}
