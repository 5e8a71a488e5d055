//! The backup archive: a gzipped tar holding both stores in a backend-neutral form.
//!
//! ```text
//! weir-backup/manifest.json            what is inside, with a SHA-256 per file
//! weir-backup/manifest.sha256          the manifest's own SHA-256
//! weir-backup/metadata/<table>.jsonl   first line the column names, then one JSON array per row
//! weir-backup/objects/<key>            every object of the artifact store, byte for byte
//! ```
//!
//! Restoring verifies every checksum before it writes anything.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use weir_store::{Snapshot, StorageIdentity, TableDump};

pub const FORMAT: &str = "weir-backup";
pub const FORMAT_VERSION: u32 = 1;
const ROOT: &str = "weir-backup";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub weir_version: String,
    pub created_at: String,
    pub schema_version: i64,
    pub identity: StorageIdentity,
    pub deployment: String,
    pub source_metadata: String,
    pub source_artifacts: String,
    /// Table name → (rows, SHA-256 of its file).
    pub tables: BTreeMap<String, TableEntry>,
    /// Object key → (bytes, SHA-256).
    pub objects: BTreeMap<String, ObjectEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    pub rows: usize,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObjectEntry {
    pub bytes: usize,
    pub sha256: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn table_file(dump: &TableDump) -> Vec<u8> {
    let mut out = serde_json::to_vec(&dump.columns).unwrap_or_default();
    out.push(b'\n');
    for row in &dump.rows {
        out.extend(serde_json::to_vec(row).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

fn parse_table_file(name: &str, bytes: &[u8]) -> anyhow::Result<TableDump> {
    let text = std::str::from_utf8(bytes).with_context(|| format!("table {name} is not UTF-8"))?;
    let mut lines = text.lines();
    let columns: Vec<String> =
        serde_json::from_str(lines.next().unwrap_or("[]")).with_context(|| format!("table {name}: bad header"))?;
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str::<Vec<Value>>(l).with_context(|| format!("table {name}: bad row")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(TableDump { name: name.to_string(), columns, rows })
}

/// Writes an archive. Objects are fetched one at a time by `fetch`.
pub struct Writer {
    builder: tar::Builder<flate2::write::GzEncoder<std::fs::File>>,
    manifest: Manifest,
}

fn append(
    builder: &mut tar::Builder<flate2::write::GzEncoder<std::fs::File>>,
    path: &str,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, path, bytes).with_context(|| format!("cannot write {path} to the archive"))
}

impl Writer {
    pub fn create(path: &Path, manifest: Manifest) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let builder = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
        Ok(Self { builder, manifest })
    }

    pub fn add_snapshot(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        for dump in &snapshot.tables {
            let bytes = table_file(dump);
            self.manifest
                .tables
                .insert(dump.name.clone(), TableEntry { rows: dump.rows.len(), sha256: sha256_hex(&bytes) });
            append(&mut self.builder, &format!("{ROOT}/metadata/{}.jsonl", dump.name), &bytes)?;
        }
        Ok(())
    }

    pub fn add_object(&mut self, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.manifest.objects.insert(key.to_string(), ObjectEntry { bytes: bytes.len(), sha256: sha256_hex(bytes) });
        append(&mut self.builder, &format!("{ROOT}/objects/{key}"), bytes)
    }

    pub fn finish(mut self) -> anyhow::Result<Manifest> {
        let manifest = serde_json::to_vec_pretty(&self.manifest)?;
        append(&mut self.builder, &format!("{ROOT}/manifest.json"), &manifest)?;
        append(&mut self.builder, &format!("{ROOT}/manifest.sha256"), sha256_hex(&manifest).as_bytes())?;
        let encoder = self.builder.into_inner().context("cannot finish the archive")?;
        let mut file = encoder.finish().context("cannot finish the archive")?;
        file.flush()?;
        file.sync_all()?;
        Ok(self.manifest)
    }
}

/// A verified archive: the manifest and the metadata in memory, objects read on demand.
pub struct Verified {
    pub manifest: Manifest,
    pub snapshot: Snapshot,
}

fn open(path: &Path) -> anyhow::Result<tar::Archive<flate2::read::GzDecoder<std::fs::File>>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(file)))
}

/// Reads the whole archive once and checks every checksum and the manifest's accounts.
pub fn verify(path: &Path) -> anyhow::Result<Verified> {
    let mut manifest_bytes = None;
    let mut manifest_sum = None;
    let mut tables: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut objects: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut archive = open(path)?;
    for entry in archive.entries().context("not a weir backup (not a gzipped tar)")? {
        let mut entry = entry.context("the archive is damaged")?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&format!("{ROOT}/")) else {
            bail!("unexpected entry {name:?}: not a weir backup");
        };
        if rest.split('/').any(|p| p == ".." || p.is_empty()) {
            bail!("unsafe entry {name:?} in the archive");
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).with_context(|| format!("cannot read {name}"))?;
        if rest == "manifest.json" {
            manifest_bytes = Some(bytes);
        } else if rest == "manifest.sha256" {
            manifest_sum = Some(String::from_utf8_lossy(&bytes).trim().to_string());
        } else if let Some(table) = rest.strip_prefix("metadata/").and_then(|t| t.strip_suffix(".jsonl")) {
            tables.insert(table.to_string(), bytes);
        } else if let Some(key) = rest.strip_prefix("objects/") {
            objects.insert(key.to_string(), (bytes.len(), sha256_hex(&bytes)));
        } else {
            bail!("unexpected entry {name:?} in the archive");
        }
    }
    let manifest_bytes = manifest_bytes.context("the archive has no manifest: not a complete weir backup")?;
    if manifest_sum.as_deref() != Some(sha256_hex(&manifest_bytes).as_str()) {
        bail!("the manifest's checksum does not match: the archive is damaged");
    }
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).context("the manifest cannot be read")?;
    if manifest.format != FORMAT || manifest.format_version != FORMAT_VERSION {
        bail!("unsupported archive format {} v{}", manifest.format, manifest.format_version);
    }
    let mut dumps = Vec::new();
    for (name, entry) in &manifest.tables {
        let bytes = tables.remove(name).with_context(|| format!("table {name} is missing from the archive"))?;
        if sha256_hex(&bytes) != entry.sha256 {
            bail!("table {name} does not match its checksum: the archive is damaged");
        }
        let dump = parse_table_file(name, &bytes)?;
        if dump.rows.len() != entry.rows {
            bail!("table {name} has {} rows, the manifest says {}", dump.rows.len(), entry.rows);
        }
        dumps.push(dump);
    }
    if let Some(extra) = tables.keys().next() {
        bail!("table {extra} is in the archive but not in its manifest");
    }
    for (key, entry) in &manifest.objects {
        match objects.remove(key) {
            Some((bytes, sum)) if bytes == entry.bytes && sum == entry.sha256 => {}
            Some(_) => bail!("object {key} does not match its checksum: the archive is damaged"),
            None => bail!("object {key} is missing from the archive"),
        }
    }
    if let Some(extra) = objects.keys().next() {
        bail!("object {extra} is in the archive but not in its manifest");
    }
    // Restore tables in the order the store defines (parents first): the snapshot order.
    let order = [
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
        "server_leases",
    ];
    dumps.sort_by_key(|d| order.iter().position(|o| *o == d.name).unwrap_or(usize::MAX));
    let snapshot = Snapshot { schema_version: manifest.schema_version, tables: dumps };
    Ok(Verified { manifest, snapshot })
}

/// Calls `each` with every object's key and bytes (a second pass over a verified archive).
pub fn for_each_object(path: &Path, mut each: impl FnMut(&str, Vec<u8>) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut archive = open(path)?;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if let Some(key) = name.strip_prefix(&format!("{ROOT}/objects/")) {
            let key = key.to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            each(&key, bytes)?;
        }
    }
    Ok(())
}
