//! The plan's report: what would be imported, what would not and why, and checksums.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// At most this many sample ids per warning.
const SAMPLES: usize = 5;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub total: u64,
    pub by_namespace: BTreeMap<String, u64>,
    pub by_state: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Warning {
    pub count: u64,
    /// What the code means, once.
    pub meaning: String,
    pub samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    pub dialect: crate::source::Dialect,
    pub server_version: String,
    /// Which of KFP's schema shapes the tables have (docs/import-kfp.md, "Variants").
    pub variant: String,
    pub snapshot: String,
    pub objects: String,
    /// The single-user `Default` experiment, which weir adopts rather than makes anew.
    pub default_experiment: Option<String>,
    /// KFP's ML Metadata database, when read (the runs' steps come from it).
    pub mlmd: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: SourceInfo,
    /// Kind → what would be imported.
    pub counts: BTreeMap<String, Counts>,
    /// Kind → rows read but not imported, by reason code.
    pub skipped: BTreeMap<String, BTreeMap<String, u64>>,
    pub warnings: BTreeMap<String, Warning>,
    /// Kind → SHA-256 over every mapped entity's canonical JSON, in id order.
    pub checksums: BTreeMap<String, String>,
    /// Why the import would be refused, if it would.
    pub refused: Vec<String>,
    /// What an apply wrote (absent for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<crate::apply::Applied>,
}

impl Report {
    /// 0: clean; 1: warnings; 2: refused.
    pub fn exit_code(&self) -> u8 {
        if !self.refused.is_empty() {
            2
        } else if !self.warnings.is_empty()
            || self.applied.as_ref().is_some_and(|a| !a.conflicts.is_empty() || a.deferred > 0)
        {
            1
        } else {
            0
        }
    }

    pub fn text(&self) -> String {
        let mut out = format!(
            "source: {} {} ({} shape), {}\nobjects: {}\n",
            match self.source.dialect {
                crate::source::Dialect::Mysql => "MySQL",
                crate::source::Dialect::Postgres => "PostgreSQL",
            },
            self.source.server_version,
            self.source.variant,
            self.source.snapshot,
            self.source.objects
        );
        out.push_str(&format!(
            "ml metadata: {}\n",
            self.source.mlmd.as_deref().unwrap_or("not read (runs come without their steps)")
        ));
        for (kind, counts) in &self.counts {
            let states: Vec<String> = counts.by_state.iter().map(|(s, n)| format!("{s} {n}")).collect();
            out.push_str(&format!("{kind}: {} ({})\n", counts.total, states.join(", ")));
        }
        for (kind, reasons) in &self.skipped {
            for (reason, n) in reasons {
                out.push_str(&format!("not imported: {n} {kind} ({reason})\n"));
            }
        }
        for (code, w) in &self.warnings {
            out.push_str(&format!("{code}: {} ({}), e.g. {}\n", w.count, w.meaning, w.samples.join(", ")));
        }
        for (kind, sum) in &self.checksums {
            out.push_str(&format!("checksum {kind}: {sum}\n"));
        }
        for why in &self.refused {
            out.push_str(&format!("refused: {why}\n"));
        }
        match &self.applied {
            None => out.push_str("dry run: nothing was written anywhere\n"),
            Some(applied) => out.push_str(&applied.text()),
        }
        out
    }
}

/// Collects one kind's entities' digests and counts as they stream past.
#[derive(Default)]
pub(crate) struct Tally {
    pub counts: Counts,
    digests: Vec<(String, [u8; 32])>,
}

impl Tally {
    /// Counts an entity and returns its digest (what the ledger records of the source row).
    pub fn add<T: Serialize>(&mut self, id: &str, namespace: &str, state: &str, mapped: &T) -> String {
        self.counts.total += 1;
        *self.counts.by_namespace.entry(namespace.to_string()).or_default() += 1;
        *self.counts.by_state.entry(state.to_string()).or_default() += 1;
        let canonical = serde_json::to_vec(mapped).unwrap_or_default();
        let digest: [u8; 32] = Sha256::digest(&canonical).into();
        self.digests.push((id.to_string(), digest));
        hex(&digest)
    }

    /// The kind's checksum: its entities sorted by id (byte order, the same on every database).
    pub fn checksum(&mut self) -> String {
        self.digests.sort();
        let mut all = Sha256::new();
        for (id, digest) in &self.digests {
            all.update(id.as_bytes());
            all.update(b"\t");
            all.update(digest);
            all.update(b"\n");
        }
        hex(&all.finalize())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Default)]
pub(crate) struct Warnings(pub BTreeMap<String, Warning>);

impl Warnings {
    pub fn add(&mut self, code: &str, meaning: &str, id: &str) {
        let w =
            self.0.entry(code.to_string()).or_insert_with(|| Warning { meaning: meaning.into(), ..Default::default() });
        w.count += 1;
        if w.samples.len() < SAMPLES {
            w.samples.push(id.to_string());
        }
    }
}
