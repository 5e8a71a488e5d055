//! The one definition of weir's tables: each table's name and its columns in order, with the
//! schema version that added each and how backups carry it.
//!
//! What can be derived is derived from here: the backup catalogue (`portable.rs`), the SELECT
//! column lists (`rows.rs`), the INSERT column and placeholder lists and the whole-row UPDATEs.
//! Each table's values are bound by one function in `binds.rs`, in this order. Adding a column
//! means a migration in each dialect's folder, the column here, and its value in `binds.rs`;
//! `tests/schema.rs` fails when a dialect's migrations and this definition disagree, and the
//! tests in `binds.rs` when a row's values do.

/// How a column's value is read into a backup and bound back on restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    Text,
    OptText,
    Int,
    OptInt,
    Bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub name: &'static str,
    pub col: Col,
    /// The schema version whose migration added the column.
    pub since: i64,
    /// Whether weir writes the column and backups carry it. A column filled by its default
    /// alone (a constant kept for a unique index) is neither written nor carried.
    pub data: bool,
}

impl Column {
    const fn new(name: &'static str, col: Col, since: i64) -> Self {
        Self { name, col, since, data: true }
    }

    const fn internal(self) -> Self {
        Self { name: self.name, col: self.col, since: self.since, data: false }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Weir's data: exported by backups, loaded by restores.
    Data,
    /// Kept by triggers from other tables: not in backups, rebuilt as a restore loads.
    Derived,
    /// Names a running process, not data: not in backups.
    Process,
}

pub(crate) struct Table {
    pub name: &'static str,
    /// The schema version whose migration created the table.
    pub since: i64,
    /// The order a backup lists the rows in.
    pub order_by: &'static str,
    pub kind: Kind,
    /// Every column, in the order the migrations create them.
    pub columns: &'static [Column],
    /// Every column's name, comma-separated, in order: what a SELECT of whole rows reads.
    pub column_list: &'static str,
}

impl Table {
    /// Whether backups carry the table.
    pub fn in_backup(&self) -> bool {
        self.kind == Kind::Data
    }

    /// The columns weir writes, in order: those a row's binds fill.
    pub fn data_columns(&self) -> impl Iterator<Item = &'static Column> {
        fn is_data(column: &&Column) -> bool {
            column.data
        }
        self.columns.iter().filter(is_data)
    }

    /// The columns a backup of schema version `version` carries, in order.
    pub fn backup_columns(&self, version: i64) -> Vec<(&'static str, Col)> {
        self.data_columns().filter(|c| c.since <= version).map(|c| (c.name, c.col)).collect()
    }

    pub(crate) fn data_list(&self) -> String {
        self.data_columns().map(|c| c.name).collect::<Vec<_>>().join(", ")
    }

    /// `INSERT INTO table (columns…) VALUES (?, …), …` for `rows` rows of the written columns.
    pub fn insert_sql(&self, rows: usize) -> String {
        let width = self.data_columns().count();
        format!("INSERT INTO {} ({}) VALUES {}", self.name, self.data_list(), values_sql(width, rows))
    }

    /// `UPDATE table SET column = ?, … WHERE id = ?`: every written column after the first,
    /// which is the id. Bound by a row's binds with the id moved last (`binds::id_last`).
    pub fn update_by_id_sql(&self) -> String {
        let mut columns = self.data_columns();
        let key = columns.next().map(|c| c.name).unwrap_or_default();
        debug_assert_eq!(key, "id", "{} is updated by its id, its first column", self.name);
        let setters: Vec<String> = columns.map(|c| format!("{} = ?", c.name)).collect();
        format!("UPDATE {} SET {} WHERE {key} = ?", self.name, setters.join(", "))
    }
}

/// `(?, …)` of `width` placeholders, for `rows` rows. Written with `?` as all of weir's SQL
/// is; `SqlStore::sql` numbers them (`$1`, `$2`, …) for PostgreSQL.
pub(crate) fn values_sql(width: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row.as_str(); rows].join(", ")
}

/// Defines a table's constant. Each column is `"name" Type since`, optionally followed by
/// `internal` (see [`Column::data`]); the column list is `concat!`ed from the same names, so it
/// is a `&'static str` usable in `format!` and cannot drift from the columns.
macro_rules! table {
    (
        $(#[$meta:meta])*
        $konst:ident = $name:literal, since $since:literal, order by $order:literal, $kind:ident {
            $first:literal $first_ty:ident $first_since:literal
            $(, $column:literal $ty:ident $column_since:literal $($flag:ident)?)* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub(crate) const $konst: Table = Table {
            name: $name,
            since: $since,
            order_by: $order,
            kind: Kind::$kind,
            columns: &[
                Column::new($first, Col::$first_ty, $first_since),
                $(Column::new($column, Col::$ty, $column_since)$(.$flag())?,)*
            ],
            column_list: concat!($first $(, ", ", $column)*),
        };
    };
}

table! {
    /// The storage's identity, shared with the artifact store's marker. `singleton` (a constant
    /// 1 under a unique index) makes a second identity row a unique violation (migration 6).
    STORAGE_IDENTITY = "storage_identity", since 1, order by "id", Data {
        "id" Text 1,
        "created_at" Int 1,
        "initialising" Bool 1,
        "deployment" Text 6,
        "singleton" Int 6 internal,
    }
}

table! {
    PIPELINES = "pipelines", since 1, order by "id", Data {
        "id" Text 1,
        "name" Text 1,
        "display_name" Text 1,
        "description" Text 1,
        "namespace" Text 1,
        "created_at" Int 1,
        "tags" Text 1,
    }
}

table! {
    PIPELINE_VERSIONS = "pipeline_versions", since 1, order by "id", Data {
        "id" Text 1,
        "pipeline_id" Text 1,
        "name" Text 1,
        "display_name" Text 1,
        "description" Text 1,
        "created_at" Int 1,
        "pipeline_spec" Text 1,
        "platform_spec" OptText 1,
        "package_key" Text 1,
        "package_url" Text 1,
        "code_source_url" Text 1,
        "tags" Text 1,
    }
}

table! {
    EXPERIMENTS = "experiments", since 1, order by "id", Data {
        "id" Text 1,
        "display_name" Text 1,
        "description" Text 1,
        "namespace" Text 1,
        "created_at" Int 1,
        "storage_state" Text 1,
        "last_run_created_at" Int 1,
    }
}

table! {
    RUNS = "runs", since 1, order by "id", Data {
        "id" Text 1,
        "experiment_id" Text 1,
        "display_name" Text 1,
        "description" Text 1,
        "namespace" Text 1,
        "storage_state" Text 1,
        "pipeline_id" Text 1,
        "pipeline_version_id" Text 1,
        "pipeline_spec" Text 1,
        "platform_spec" OptText 1,
        "parameters" Text 1,
        "pipeline_root" Text 1,
        "service_account" Text 1,
        "created_at" Int 1,
        "scheduled_at" Int 1,
        "finished_at" Int 1,
        "state" Text 1,
        "error" OptText 1,
        "recurring_run_id" Text 1,
        "tasks_version" Int 11 internal,
        "tasks_reset" Int 11 internal,
    }
}

table! {
    RUN_STATE_HISTORY = "run_state_history", since 1, order by "run_id, seq", Data {
        "run_id" Text 1,
        "seq" Int 1,
        "update_time" Int 1,
        "state" Text 1,
        "error" OptText 1,
    }
}

table! {
    RECURRING_RUNS = "recurring_runs", since 1, order by "id", Data {
        "id" Text 1,
        "display_name" Text 1,
        "description" Text 1,
        "experiment_id" Text 1,
        "namespace" Text 1,
        "pipeline_id" Text 1,
        "pipeline_version_id" Text 1,
        "pipeline_spec" Text 1,
        "platform_spec" OptText 1,
        "parameters" Text 1,
        "pipeline_root" Text 1,
        "service_account" Text 1,
        "max_concurrency" Int 1,
        "trigger_spec" Text 1,
        "enabled" Bool 1,
        "no_catchup" Bool 1,
        "created_at" Int 1,
        "updated_at" Int 1,
        "last_slot_at" Int 4,
        "last_index" Int 4,
    }
}

table! {
    RECURRING_RUN_SLOTS = "recurring_run_slots", since 4, order by "recurring_run_id, slot_at", Data {
        "recurring_run_id" Text 4,
        "slot_at" Int 4,
        "run_id" Text 4,
        "created_at" Int 4,
    }
}

table! {
    TASKS = "tasks", since 2, order by "id", Data {
        "id" Text 2,
        "run_id" Text 2,
        "parent_id" Text 2,
        "name" Text 2,
        "display_name" Text 2,
        "kind" Text 2,
        "iteration_index" OptInt 2,
        "state" Text 2,
        "attempts" Int 2,
        "inputs" Text 2,
        "outputs" Text 2,
        "fingerprint" Text 2,
        "pipeline_name" Text 2,
        "cached" Bool 2,
        "image" Text 2,
        "error" OptText 2,
        "created_at" Int 2,
        "started_at" Int 2,
        "finished_at" Int 2,
        "retry_at" Int 2,
        "pid" Int 2,
        "state_history" Text 2,
        "version" Int 11 internal,
    }
}

table! {
    ARTIFACTS = "artifacts", since 2, order by "id", Data {
        "id" Int 2,
        "run_id" Text 2,
        "task_id" Text 2,
        "name" Text 2,
        "uri" Text 2,
        "schema_title" Text 2,
        "schema_version" Text 2,
        "metadata" Text 2,
        "created_at" Int 2,
        "object_count" Int 3,
    }
}

table! {
    /// Secrets and config maps steps are given (migration 7). `data` is a JSON object.
    STEP_CONFIG = "step_config", since 7, order by "kind, name", Data {
        "kind" Text 7,
        "name" Text 7,
        "data" Text 7,
        "created_at" Int 7,
    }
}

table! {
    /// `weir import kfp`'s ledger: what was imported from which source row (migration 8).
    IMPORT_LEDGER = "import_ledger", since 8, order by "source, kind, source_id", Data {
        "source" Text 8,
        "kind" Text 8,
        "source_id" Text 8,
        "source_sha256" Text 8,
        "weir_id" Text 8,
        "weir_sha256" Text 8,
        "imported_at" Int 8,
    }
}

table! {
    /// When each archived run was archived (migration 10): retention counts "archived for"
    /// from here. A row goes when its run is unarchived or deleted.
    RUN_ARCHIVED = "run_archived", since 10, order by "run_id", Data {
        "run_id" Text 10,
        "archived_at" Int 10,
    }
}

table! {
    /// An experiment's own retention policies, as JSON (migration 10).
    RETENTION = "retention", since 10, order by "experiment_id", Data {
        "experiment_id" Text 10,
        "policies" Text 10,
        "updated_at" Int 10,
    }
}

table! {
    /// Every removal, for the history the API and UI show (migration 10).
    GC_HISTORY = "gc_history", since 10, order by "at, id", Data {
        "id" Text 10,
        "at" Int 10,
        "kind" Text 10,
        "target_id" Text 10,
        "display_name" Text 10,
        "policy" Text 10,
        "detail" Text 10,
        "objects" Int 10,
        "bytes" Int 10,
        "done_at" Int 10,
    }
}

table! {
    /// The journal of object deletions still to do (migration 10). Backups carry it: a
    /// restored deployment finishes what the original had started.
    GC_PENDING = "gc_pending", since 10, order by "created_at, id", Data {
        "id" Text 10,
        "history_id" Text 10,
        "prefix" Text 10,
        "created_at" Int 10,
    }
}

table! {
    /// Servers' leases. Backups carry the table (its rows are dropped by `weir storage backup`,
    /// which knows they describe processes).
    SERVER_LEASES = "server_leases", since 3, order by "id", Data {
        "id" Text 3,
        "deployment" Text 3,
        "host" Text 3,
        "pid" Int 3,
        "version" Text 3,
        "schema_version" Int 3,
        "started_at" Int 3,
        "heartbeat_at" Int 3,
    }
}

table! {
    /// Run counts per (experiment, storage state), kept by triggers on `runs` (migration 5).
    RUN_COUNTS = "run_counts", since 5, order by "experiment_id, storage_state", Derived {
        "experiment_id" Text 5,
        "storage_state" Text 5,
        "n" Int 5,
    }
}

table! {
    /// The engine lease: at most one row (id 1), the lease of the server whose engine runs
    /// steps (migration 6).
    ENGINE_LEASE = "engine_lease", since 6, order by "id", Process {
        "id" Int 6,
        "lease_id" Text 6,
        "taken_at" Int 6,
    }
}

table! {
    /// Which replica drives which run (migration 9): a row per run taken, owned by a server
    /// lease. Not in backups: a restored storage's runs are taken afresh.
    RUN_LEASES = "run_leases", since 9, order by "run_id", Process {
        "run_id" Text 9,
        "owner" Text 9,
        "taken_at" Int 9,
        "takeovers" Int 9,
    }
}

/// Every weir table. Backups export (and restores load) the tables they carry in this order,
/// parents before children, since foreign keys are checked row by row; purge drops them in
/// the reverse order, then the others.
pub(crate) const TABLES: &[Table] = &[
    STORAGE_IDENTITY,
    PIPELINES,
    PIPELINE_VERSIONS,
    EXPERIMENTS,
    RUNS,
    RUN_STATE_HISTORY,
    RECURRING_RUNS,
    RECURRING_RUN_SLOTS,
    TASKS,
    ARTIFACTS,
    STEP_CONFIG,
    IMPORT_LEDGER,
    RUN_ARCHIVED,
    RETENTION,
    GC_HISTORY,
    GC_PENDING,
    SERVER_LEASES,
    RUN_COUNTS,
    ENGINE_LEASE,
    RUN_LEASES,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        let mut names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLES.len(), "a table is defined twice");
        for table in TABLES {
            let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
            assert_eq!(table.column_list, columns.join(", "), "{}", table.name);
            let mut unique = columns.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), columns.len(), "{} defines a column twice", table.name);
            assert_eq!(table.columns[0].since, table.since, "{} has its first column from the start", table.name);
            assert!(table.columns.iter().all(|c| c.since >= table.since), "{}", table.name);
            assert!(table.columns[0].data, "{}'s first column is written", table.name);
        }
    }

    /// Backups carry the tables and columns they carried before the definition was shared.
    #[test]
    fn backup_catalogue_is_unchanged() {
        let carried: Vec<&str> = TABLES.iter().filter(|t| t.in_backup()).map(|t| t.name).collect();
        assert_eq!(
            carried,
            [
                "storage_identity",
                "pipelines",
                "pipeline_versions",
                "experiments",
                "runs",
                "run_state_history",
                "recurring_runs",
                "recurring_run_slots",
                "tasks",
                "artifacts",
                "step_config",
                "import_ledger",
                "run_archived",
                "retention",
                "gc_history",
                "gc_pending",
                "server_leases",
            ]
        );
        let identity: Vec<&str> = STORAGE_IDENTITY.backup_columns(6).into_iter().map(|(n, _)| n).collect();
        assert_eq!(identity, ["id", "created_at", "initialising", "deployment"]);
        let identity_v5: Vec<&str> = STORAGE_IDENTITY.backup_columns(5).into_iter().map(|(n, _)| n).collect();
        assert_eq!(identity_v5, ["id", "created_at", "initialising"]);
    }

    #[test]
    fn statements_are_derived() {
        assert_eq!(
            STORAGE_IDENTITY.insert_sql(1),
            "INSERT INTO storage_identity (id, created_at, initialising, deployment) VALUES (?, ?, ?, ?)"
        );
        assert_eq!(
            RECURRING_RUN_SLOTS.insert_sql(2),
            "INSERT INTO recurring_run_slots (recurring_run_id, slot_at, run_id, created_at) \
             VALUES (?, ?, ?, ?), (?, ?, ?, ?)"
        );
        assert_eq!(ENGINE_LEASE.update_by_id_sql(), "UPDATE engine_lease SET lease_id = ?, taken_at = ? WHERE id = ?");
        assert_eq!(values_sql(2, 0), "");
    }
}
