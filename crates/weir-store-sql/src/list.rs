//! Turns a resolved [`ListQuery`] into SQL: predicates, keyset paging and ordering.
//!
//! Paging is by keyset (`(sort column, id)` after the last row), not OFFSET, so a page boundary
//! holds while rows are inserted and deep pages cost the same as the first.

use serde_json::Value;
use weir_api_model::Operation;
use weir_store::{FieldKind, ListQuery, ResolvedValue, StoreError, StoreResult};

use crate::{Bind, Dialect};

pub(crate) struct ListSql {
    /// A count query over `run_counts` that replaces counting the rows, when one answers it.
    pub counter_sql: Option<String>,
    /// ` WHERE …` for the count (filter only), or empty.
    pub count_where: String,
    pub count_binds: Vec<Bind>,
    /// ` WHERE … ORDER BY … LIMIT n` for the page.
    pub page_tail: String,
    pub page_binds: Vec<Bind>,
}

/// A runs list filtered by nothing but experiment and storage state is counted from
/// `run_counts` (kept by triggers, migration 5), so `total_size` costs the same at a million
/// runs as at ten. Any other filter counts the rows.
fn counted_runs(dialect: Dialect, query: &ListQuery) -> Option<(String, Vec<Bind>)> {
    if query.entity != weir_store::Entity::Run {
        return None;
    }
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    for p in &query.predicates {
        let ResolvedValue::Text(value) = &p.value else { return None };
        let op = match p.operation {
            Operation::Equals => "=",
            Operation::NotEquals => "<>",
            _ => return None,
        };
        if !matches!(p.field.column, "experiment_id" | "storage_state") {
            return None;
        }
        clauses.push(format!("{} {op} ?", p.field.column));
        binds.push(Bind::Text(value.clone()));
    }
    // SUM is DECIMAL on MySQL and NUMERIC on PostgreSQL; the count is read as a 64-bit integer.
    let integer = match dialect {
        Dialect::MySql => "SIGNED",
        Dialect::Sqlite | Dialect::Postgres => "BIGINT",
    };
    Some((format!("SELECT CAST(COALESCE(SUM(n), 0) AS {integer}) FROM run_counts{}", join_where(&clauses)), binds))
}

pub(crate) fn build(dialect: Dialect, query: &ListQuery) -> StoreResult<ListSql> {
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    for p in &query.predicates {
        clauses.push(predicate(dialect, p.field.column, p.field.kind, p.operation, &p.value, &mut binds));
    }
    let count_where = join_where(&clauses);
    let mut count_binds = binds.clone();
    let counter_sql = counted_runs(dialect, query).map(|(sql, counter_binds)| {
        count_binds = counter_binds;
        sql
    });

    let column = query.sort.column;
    let direction = if query.descending { "DESC" } else { "ASC" };
    if let Some((value, id)) = &query.after {
        let cmp = if query.descending { "<" } else { ">" };
        let sort_bind = match (query.sort.kind, value) {
            (FieldKind::Text, Value::String(s)) => Bind::Text(s.clone()),
            (FieldKind::Time | FieldKind::Int, Value::Number(n)) if n.is_i64() => {
                Bind::Int(n.as_i64().unwrap_or_default())
            }
            _ => return Err(StoreError::InvalidArgument("invalid page token: sort value does not fit".into())),
        };
        if column == "id" {
            clauses.push(format!("id {cmp} ?"));
            binds.push(Bind::Text(id.clone()));
        } else {
            clauses.push(format!("({column} {cmp} ? OR ({column} = ? AND id {cmp} ?))"));
            binds.push(sort_bind.clone());
            binds.push(sort_bind);
            binds.push(Bind::Text(id.clone()));
        }
    }
    let order = if column == "id" {
        format!(" ORDER BY id {direction}")
    } else {
        format!(" ORDER BY {column} {direction}, id {direction}")
    };
    let page_tail = format!("{}{order} LIMIT {}", join_where(&clauses), query.page_size as u64 + 1);
    Ok(ListSql { counter_sql, count_where, count_binds, page_tail, page_binds: binds })
}

fn join_where(clauses: &[String]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

const MS: i64 = 1000;

fn predicate(
    dialect: Dialect,
    column: &str,
    kind: FieldKind,
    op: Operation,
    value: &ResolvedValue,
    binds: &mut Vec<Bind>,
) -> String {
    match value {
        ResolvedValue::Text(text) => {
            if op == Operation::IsSubstring {
                binds.push(Bind::Text(text.clone()));
                // Position functions avoid LIKE's wildcards and SQLite's case-folding LIKE.
                return match dialect {
                    Dialect::Postgres => format!("strpos({column}, ?) > 0"),
                    Dialect::MySql | Dialect::Sqlite => format!("instr({column}, ?) > 0"),
                };
            }
            binds.push(Bind::Text(text.clone()));
            format!("{column} {} ?", comparison(op))
        }
        ResolvedValue::Int(n) => {
            binds.push(Bind::Int(*n));
            format!("{column} {} ?", comparison(op))
        }
        ResolvedValue::Texts(values) => in_list(column, values.iter().map(|v| Bind::Text(v.clone())), binds),
        ResolvedValue::Ints(values) => in_list(column, values.iter().map(|v| Bind::Int(*v)), binds),
        ResolvedValue::Second(seconds) => {
            debug_assert_eq!(kind, FieldKind::Time);
            second_predicate(column, op, *seconds, binds)
        }
        ResolvedValue::Seconds(values) => {
            if values.is_empty() {
                return "1 = 0".into();
            }
            let parts: Vec<String> =
                values.iter().map(|s| second_predicate(column, Operation::Equals, *s, binds)).collect();
            format!("({})", parts.join(" OR "))
        }
    }
}

/// Times are stored in milliseconds and compared as KFP compares them, in whole seconds.
fn second_predicate(column: &str, op: Operation, seconds: i64, binds: &mut Vec<Bind>) -> String {
    let start = seconds.saturating_mul(MS);
    let end = seconds.saturating_add(1).saturating_mul(MS);
    match op {
        Operation::Equals | Operation::In => {
            binds.push(Bind::Int(start));
            binds.push(Bind::Int(end));
            format!("({column} >= ? AND {column} < ?)")
        }
        Operation::NotEquals => {
            binds.push(Bind::Int(start));
            binds.push(Bind::Int(end));
            format!("({column} < ? OR {column} >= ?)")
        }
        Operation::GreaterThan => {
            binds.push(Bind::Int(end));
            format!("{column} >= ?")
        }
        Operation::GreaterThanEquals => {
            binds.push(Bind::Int(start));
            format!("{column} >= ?")
        }
        Operation::LessThan => {
            binds.push(Bind::Int(start));
            format!("{column} < ?")
        }
        Operation::LessThanEquals | Operation::IsSubstring => {
            binds.push(Bind::Int(end));
            format!("{column} < ?")
        }
    }
}

fn comparison(op: Operation) -> &'static str {
    match op {
        Operation::Equals | Operation::In | Operation::IsSubstring => "=",
        Operation::NotEquals => "<>",
        Operation::GreaterThan => ">",
        Operation::GreaterThanEquals => ">=",
        Operation::LessThan => "<",
        Operation::LessThanEquals => "<=",
    }
}

fn in_list(column: &str, values: impl Iterator<Item = Bind>, binds: &mut Vec<Bind>) -> String {
    let before = binds.len();
    binds.extend(values);
    let n = binds.len() - before;
    if n == 0 {
        return "1 = 0".into();
    }
    format!("{column} IN ({})", vec!["?"; n].join(", "))
}
