//! The backup archive: a gzipped tar holding both stores in a backend-neutral form.
//!
//! ```text
//! weir-backup/manifest.json            what is inside, with a SHA-256 per file
//! weir-backup/manifest.sha256          the manifest's own SHA-256
//! weir-backup/metadata/<table>.jsonl   first line the column names, then one JSON array per row
//! weir-backup/objects/<key>            every object of the artifact store, byte for byte
//! ```
//!
//! Restoring verifies every checksum before it writes anything. Both directions stream: memory
//! holds a chunk of rows or one object at a time, whatever the size of the stores.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use weir_store::{StorageIdentity, TableDump, EXPORT_CHUNK_ROWS};

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
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

type TarWriter = tar::Builder<flate2::write::GzEncoder<std::fs::File>>;

fn append(builder: &mut TarWriter, path: &str, size: u64, data: impl Read) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, path, data).with_context(|| format!("cannot write {path} to the archive"))
}

/// A table being written: its rows go to a spool file beside the archive (a tar entry needs its
/// size up front), hashed as they are written, so memory holds one chunk at a time.
struct Spool {
    name: String,
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    hasher: Sha256,
    bytes: u64,
    rows: usize,
}

impl Spool {
    fn write(&mut self, line: &[u8]) -> anyhow::Result<()> {
        self.file.write_all(line)?;
        self.file.write_all(b"\n")?;
        self.hasher.update(line);
        self.hasher.update(b"\n");
        self.bytes += line.len() as u64 + 1;
        Ok(())
    }
}

/// Writes an archive: metadata tables chunk by chunk, then objects one at a time.
pub struct Writer {
    builder: TarWriter,
    spool_path: PathBuf,
    spool: Option<Spool>,
    manifest: Manifest,
}

impl Writer {
    pub fn create(path: &Path, manifest: Manifest) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let builder = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
        let mut spool_path = path.as_os_str().to_owned();
        spool_path.push(".table");
        Ok(Self { builder, spool_path: spool_path.into(), spool: None, manifest })
    }

    pub fn set_schema_version(&mut self, version: i64) {
        self.manifest.schema_version = version;
    }

    /// Adds a chunk of a table's rows; chunks of one table come together, as exported.
    pub fn add_chunk(&mut self, chunk: &TableDump) -> anyhow::Result<()> {
        if self.spool.as_ref().is_some_and(|s| s.name != chunk.name) {
            self.finish_table()?;
        }
        if self.spool.is_none() {
            if self.manifest.tables.contains_key(&chunk.name) {
                bail!("table {} was exported in two parts", chunk.name);
            }
            let file = std::fs::File::create(&self.spool_path)
                .with_context(|| format!("cannot create {}", self.spool_path.display()))?;
            let mut spool = Spool {
                name: chunk.name.clone(),
                path: self.spool_path.clone(),
                file: std::io::BufWriter::new(file),
                hasher: Sha256::new(),
                bytes: 0,
                rows: 0,
            };
            spool.write(&serde_json::to_vec(&chunk.columns)?)?;
            self.spool = Some(spool);
        }
        let spool = self.spool.as_mut().context("no table is being written")?;
        for row in &chunk.rows {
            spool.write(&serde_json::to_vec(row)?)?;
            spool.rows += 1;
        }
        Ok(())
    }

    fn finish_table(&mut self) -> anyhow::Result<()> {
        let Some(spool) = self.spool.take() else { return Ok(()) };
        let file = spool.file.into_inner().map_err(|e| e.into_error())?;
        drop(file);
        let entry = TableEntry { rows: spool.rows, sha256: hex(&spool.hasher.finalize()) };
        let data = std::fs::File::open(&spool.path)?;
        append(&mut self.builder, &format!("{ROOT}/metadata/{}.jsonl", spool.name), spool.bytes, data)?;
        std::fs::remove_file(&spool.path)?;
        self.manifest.tables.insert(spool.name, entry);
        Ok(())
    }

    pub fn add_object(&mut self, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.finish_table()?;
        self.manifest.objects.insert(key.to_string(), ObjectEntry { bytes: bytes.len(), sha256: sha256_hex(bytes) });
        append(&mut self.builder, &format!("{ROOT}/objects/{key}"), bytes.len() as u64, bytes)
    }

    pub fn finish(mut self) -> anyhow::Result<Manifest> {
        self.finish_table()?;
        let manifest = serde_json::to_vec_pretty(&self.manifest)?;
        append(&mut self.builder, &format!("{ROOT}/manifest.json"), manifest.len() as u64, manifest.as_slice())?;
        let sum = sha256_hex(&manifest);
        append(&mut self.builder, &format!("{ROOT}/manifest.sha256"), sum.len() as u64, sum.as_bytes())?;
        let encoder = self.builder.into_inner().context("cannot finish the archive")?;
        let mut file = encoder.finish().context("cannot finish the archive")?;
        file.flush()?;
        file.sync_all()?;
        Ok(self.manifest)
    }

    /// Removes what a failed backup left (the caller removes the archive itself).
    pub fn abandon(self) {
        if let Some(spool) = self.spool {
            let _ = std::fs::remove_file(spool.path);
        }
    }
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: usize,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n;
        Ok(n)
    }
}

/// What an archive entry is.
enum Entry {
    Manifest,
    ManifestSum,
    Table(String),
    Object(String),
}

fn classify(name: &str) -> anyhow::Result<Entry> {
    let Some(rest) = name.strip_prefix(&format!("{ROOT}/")) else {
        bail!("unexpected entry {name:?}: not a weir backup");
    };
    if rest.split('/').any(|p| p == ".." || p.is_empty()) {
        bail!("unsafe entry {name:?} in the archive");
    }
    Ok(if rest == "manifest.json" {
        Entry::Manifest
    } else if rest == "manifest.sha256" {
        Entry::ManifestSum
    } else if let Some(table) = rest.strip_prefix("metadata/").and_then(|t| t.strip_suffix(".jsonl")) {
        Entry::Table(table.to_string())
    } else if let Some(key) = rest.strip_prefix("objects/") {
        Entry::Object(key.to_string())
    } else {
        bail!("unexpected entry {name:?} in the archive");
    })
}

/// Reads a table file as chunks of rows; `each` gets every chunk (at least one per table).
fn read_table(
    name: &str,
    data: impl Read,
    mut each: impl FnMut(TableDump) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut lines = std::io::BufReader::new(data).lines();
    let header = lines.next().transpose().with_context(|| format!("table {name} is not UTF-8 text"))?;
    let columns: Vec<String> =
        serde_json::from_str(header.as_deref().unwrap_or("[]")).with_context(|| format!("table {name}: bad header"))?;
    let empty = || TableDump { name: name.to_string(), columns: columns.clone(), rows: Vec::new() };
    let mut chunk = empty();
    let mut sent = false;
    for line in lines {
        let line = line.with_context(|| format!("table {name} is not UTF-8 text"))?;
        if line.is_empty() {
            continue;
        }
        let row: Vec<Value> = serde_json::from_str(&line).with_context(|| format!("table {name}: bad row"))?;
        if row.len() != columns.len() {
            bail!("table {name}: a row has {} values for {} columns", row.len(), columns.len());
        }
        chunk.rows.push(row);
        if chunk.rows.len() == EXPORT_CHUNK_ROWS {
            each(std::mem::replace(&mut chunk, empty()))?;
            sent = true;
        }
    }
    if !chunk.rows.is_empty() || !sent {
        each(chunk)?;
    }
    Ok(())
}

fn open(path: &Path) -> anyhow::Result<tar::Archive<flate2::read::GzDecoder<std::fs::File>>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(file)))
}

/// Reads the whole archive once, streaming, and checks every checksum, every row's shape and
/// the manifest's accounts. Returns the manifest; nothing is kept in memory but the sums.
pub fn verify(path: &Path) -> anyhow::Result<Manifest> {
    let mut manifest_bytes = None;
    let mut manifest_sum = None;
    let mut tables: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut objects: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut archive = open(path)?;
    for entry in archive.entries().context("not a weir backup (not a gzipped tar)")? {
        let entry = entry.context("the archive is damaged")?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let kind = classify(&name)?;
        let mut reader = Hashing { inner: entry, hasher: Sha256::new(), bytes: 0 };
        match kind {
            Entry::Manifest | Entry::ManifestSum => {
                let mut bytes = Vec::new();
                reader.read_to_end(&mut bytes).with_context(|| format!("cannot read {name}"))?;
                if matches!(kind, Entry::Manifest) {
                    manifest_bytes = Some(bytes);
                } else {
                    manifest_sum = Some(String::from_utf8_lossy(&bytes).trim().to_string());
                }
            }
            Entry::Table(table) => {
                let mut rows = 0;
                read_table(&table, &mut reader, |chunk| {
                    rows += chunk.rows.len();
                    Ok(())
                })?;
                // Whatever the line reader left unread still counts for the checksum.
                std::io::copy(&mut reader, &mut std::io::sink())?;
                tables.insert(table, (rows, hex(&reader.hasher.finalize())));
            }
            Entry::Object(key) => {
                std::io::copy(&mut reader, &mut std::io::sink()).with_context(|| format!("cannot read {name}"))?;
                objects.insert(key, (reader.bytes, hex(&reader.hasher.finalize())));
            }
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
    for (name, entry) in &manifest.tables {
        let (rows, sum) = tables.remove(name).with_context(|| format!("table {name} is missing from the archive"))?;
        if sum != entry.sha256 {
            bail!("table {name} does not match its checksum: the archive is damaged");
        }
        if rows != entry.rows {
            bail!("table {name} has {rows} rows, the manifest says {}", entry.rows);
        }
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
    Ok(manifest)
}

/// Calls `each` with every chunk of every table, in the archive's order (a further pass over a
/// verified archive). Stops reading once all `tables` tables have been read.
pub fn for_each_chunk(
    path: &Path,
    tables: usize,
    mut each: impl FnMut(TableDump) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut archive = open(path)?;
    let mut seen = 0;
    for entry in archive.entries()? {
        if seen == tables {
            break;
        }
        let entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if let Entry::Table(table) = classify(&name)? {
            read_table(&table, entry, &mut each)?;
            seen += 1;
        }
    }
    Ok(())
}

/// Calls `each` with every object's key and bytes, one at a time (a further pass over a
/// verified archive).
pub fn for_each_object(path: &Path, mut each: impl FnMut(&str, Vec<u8>) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut archive = open(path)?;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if let Entry::Object(key) = classify(&name)? {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            each(&key, bytes)?;
        }
    }
    Ok(())
}
