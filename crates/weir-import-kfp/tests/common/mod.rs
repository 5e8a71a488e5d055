//! KFP-shaped databases built here from KFP's own table shapes
//! (`backend/src/apiserver/model/*.go`: 2.17's GORM v2 types, 2.0's GORM v1 ones), seeded with
//! rows of every kind an import must recognise, on MariaDB and PostgreSQL, with a bucket on the
//! test S3 server holding the specs KFP 1.x kept only as objects.
#![allow(dead_code)]

use std::str::FromStr;

use sqlx::{ConnectOptions, Connection};
use weir_artifacts::{ArtifactStore, S3Settings};

#[derive(Clone, Copy, PartialEq)]
pub enum Db {
    Maria,
    Postgres,
}

/// Column types as GORM declares them for KFP 2.15+ (v2) or 2.0-2.14 (v1).
#[derive(Clone, Copy, PartialEq)]
pub enum Shape {
    V2_17,
    V2_0,
}

pub struct Fixture {
    pub db: Db,
    server: String,
    name: String,
    pub url: String,
}

impl Fixture {
    pub async fn create(db: Db, shape: Shape) -> Self {
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
        for statement in ddl(db, shape) {
            fixture.execute(&statement).await;
        }
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
    let id = |v2: &str| if shape == Shape::V2_17 { v2.to_string() } else { "varchar(255)".to_string() };
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
                ("WorkflowSpecManifest", if shape == Shape::V2_17 { long.into() } else { format!("{long} NOT NULL") }),
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
    if shape == Shape::V2_17 {
        // 2.14's Name/DisplayName split, 2.4's last-run column, 2.17's tags and plugins.
        tables[0].1.push(("DisplayName", "varchar(255) NOT NULL".into()));
        tables[1].1.push(("DisplayName", "varchar(255) NOT NULL".into()));
        tables[2].1.push(("LastRunCreatedAtInSec", "bigint NOT NULL".into()));
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
    let v217 = shape == Shape::V2_17;
    let pipeline = |id: &str, name: &str, status: &str| {
        if v217 {
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
        let display = if v217 { ", \"DisplayName\"" } else { "" };
        let display_value = if v217 { format!(", {}", q(id)) } else { String::new() };
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
            if v217 { ", \"LastRunCreatedAtInSec\"" } else { "" }, if v217 { ", 0" } else { "" }),
        format!("INSERT INTO \"experiments\" (\"UUID\", \"Name\", \"Description\", \"CreatedAtInSec\", \"Namespace\", \"StorageState\"{}) VALUES ('e2', 'old', 'it''s old', 1600000000, '', 'STORAGESTATE_ARCHIVED'{})",
            if v217 { ", \"LastRunCreatedAtInSec\"" } else { "" }, if v217 { ", 0" } else { "" }),
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
