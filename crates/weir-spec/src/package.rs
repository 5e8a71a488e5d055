//! Reading pipeline packages in the formats KFP accepts.

use std::io::Read;

use serde::Deserialize;
use serde_json::Value;

use crate::SpecError;

/// Largest package accepted, as in KFP (`common.MaxFileLength`).
pub const MAX_PACKAGE_BYTES: usize = 32 << 20;

/// The documents of a pipeline package.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// The PipelineSpec, protobuf JSON (camelCase keys).
    pub pipeline_spec: Value,
    /// The PlatformSpec, when the package has one.
    pub platform_spec: Option<Value>,
}

/// Reads a package: the file name decides for `.yaml`, `.yml` and `.json`; otherwise the
/// content does (zip or gzipped tar), as KFP's `ReadPipelineFile` does.
pub fn read_package(file_name: &str, bytes: &[u8]) -> Result<Package, SpecError> {
    if bytes.len() > MAX_PACKAGE_BYTES {
        return Err(SpecError::new(format!(
            "the package is {} bytes; the largest accepted is {MAX_PACKAGE_BYTES} bytes",
            bytes.len()
        )));
    }
    if bytes.is_empty() {
        return Err(SpecError::new("the package file is empty"));
    }
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json") {
        return parse_documents(bytes);
    }
    if bytes.starts_with(b"PK") {
        return parse_documents(&from_zip(bytes)?);
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return parse_documents(&from_tarball(bytes)?);
    }
    // A package without a telling name (for example uploaded from a pipe): try it as text.
    if let Ok(package) = parse_documents(bytes) {
        return Ok(package);
    }
    Err(SpecError::new("unexpected pipeline package format: send a .yaml, .yml or .json file, a .zip or a .tar.gz"))
}

fn is_yaml_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml")
}

fn limited_read(reader: impl Read, name: &str) -> Result<Vec<u8>, SpecError> {
    let mut out = Vec::new();
    reader
        .take(MAX_PACKAGE_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| SpecError::new(format!("cannot read {name} from the archive: {e}")))?;
    if out.len() > MAX_PACKAGE_BYTES {
        return Err(SpecError::new(format!("{name} in the archive is larger than {MAX_PACKAGE_BYTES} bytes")));
    }
    Ok(out)
}

/// `pipeline.yaml` if the archive has it, else its first file, which must be YAML.
fn from_zip(bytes: &[u8]) -> Result<Vec<u8>, SpecError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| SpecError::new(format!("not a valid zip file: {e}")))?;
    let names: Vec<String> = (0..archive.len())
        .filter_map(|i| archive.by_index(i).ok().filter(|f| f.is_file()).map(|f| f.name().to_string()))
        .collect();
    let Some(first) = names.first() else {
        return Err(SpecError::new("the zip file holds no file"));
    };
    let chosen = names.iter().find(|n| n.as_str() == "pipeline.yaml").unwrap_or(first).clone();
    if !is_yaml_name(&chosen) {
        return Err(SpecError::new(format!("expected a pipeline.yaml file inside the zip file, found {chosen:?}")));
    }
    let file =
        archive.by_name(&chosen).map_err(|e| SpecError::new(format!("cannot read {chosen} from the zip file: {e}")))?;
    limited_read(file, &chosen)
}

fn from_tarball(bytes: &[u8]) -> Result<Vec<u8>, SpecError> {
    let invalid = |e: std::io::Error| SpecError::new(format!("not a valid tarball: {e}"));
    let mut chosen: Option<(String, Vec<u8>)> = None;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().map_err(invalid)? {
        let entry = entry.map_err(invalid)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(invalid)?.to_string_lossy().into_owned();
        let is_pipeline_yaml = name == "pipeline.yaml" || name == "./pipeline.yaml";
        if chosen.is_none() || is_pipeline_yaml {
            let content = limited_read(entry, &name)?;
            chosen = Some((name, content));
            if is_pipeline_yaml {
                break;
            }
        }
    }
    let Some((name, content)) = chosen else {
        return Err(SpecError::new("the tarball holds no file"));
    };
    if !is_yaml_name(&name) {
        return Err(SpecError::new(format!("expected a pipeline.yaml file inside the tarball, found {name:?}")));
    }
    Ok(content)
}

fn parse_documents(bytes: &[u8]) -> Result<Package, SpecError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SpecError::new("the package is not UTF-8 text"))?;
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(document)
            .map_err(|e| SpecError::new(format!("the package is not valid YAML or JSON: {e}")))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    from_documents(documents)
}

fn from_documents(documents: Vec<Value>) -> Result<Package, SpecError> {
    let mut pipeline_spec = None;
    let mut platform_spec = None;
    for document in documents {
        // The run request form: {"pipeline_spec": …, "platform_spec": …}.
        if document.get("pipeline_spec").is_some() || document.get("pipelineSpec").is_some() {
            let split = split_run_spec(&document)?;
            if pipeline_spec.replace(split.pipeline_spec).is_some() {
                return Err(SpecError::new("the package holds more than one pipeline spec"));
            }
            platform_spec = split.platform_spec.or(platform_spec);
            continue;
        }
        if document.get("platforms").is_some() {
            if platform_spec.replace(document).is_some() {
                return Err(SpecError::new("the package holds more than one platform spec"));
            }
            continue;
        }
        if document.get("pipelineInfo").is_some() || document.get("root").is_some() {
            if pipeline_spec.replace(document).is_some() {
                return Err(SpecError::new("the package holds more than one pipeline spec"));
            }
            continue;
        }
        if document.get("apiVersion").is_some() && document.get("kind").is_some() {
            return Err(SpecError::new(
                "the package is a KFP v1 (Argo workflow) pipeline; weir runs pipelines compiled by the kfp 2.x SDK",
            ));
        }
        return Err(SpecError::new("the package is not a pipeline spec: a document has neither pipelineInfo nor root"));
    }
    let Some(pipeline_spec) = pipeline_spec else {
        return Err(SpecError::new("the package holds no pipeline spec"));
    };
    Ok(Package { pipeline_spec, platform_spec })
}

/// Splits a run's `pipeline_spec` field, which the client sends either as the PipelineSpec
/// itself or, for packages with a PlatformSpec, as `{"pipeline_spec": …, "platform_spec": …}`.
pub fn split_run_spec(value: &Value) -> Result<Package, SpecError> {
    let Some(object) = value.as_object() else {
        return Err(SpecError::new("pipeline_spec must be a JSON object"));
    };
    let inner = object.get("pipeline_spec").or_else(|| object.get("pipelineSpec"));
    match inner {
        Some(spec) => {
            let platform = object.get("platform_spec").or_else(|| object.get("platformSpec")).cloned();
            Ok(Package { pipeline_spec: spec.clone(), platform_spec: platform.filter(|p| !p.is_null()) })
        }
        None => Ok(Package { pipeline_spec: value.clone(), platform_spec: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const SPEC: &str = "pipelineInfo:\n  name: p\nroot:\n  dag:\n    tasks: {}\nschemaVersion: 2.1.0\n";

    #[test]
    fn yaml_with_platform_spec() {
        let text = format!("{SPEC}---\nplatforms:\n  kubernetes: {{}}\n");
        let package = read_package("p.yaml", text.as_bytes()).unwrap();
        assert_eq!(package.pipeline_spec["pipelineInfo"]["name"], "p");
        assert!(package.platform_spec.is_some());
    }

    #[test]
    fn json_and_wrapped_json() {
        let spec: Value = serde_norway::from_str(SPEC).unwrap();
        let plain = serde_json::to_vec(&spec).unwrap();
        assert_eq!(read_package("p.json", &plain).unwrap().pipeline_spec, spec);
        let wrapped =
            serde_json::to_vec(&serde_json::json!({"pipeline_spec": spec, "platform_spec": {"platforms": {}}}))
                .unwrap();
        let package = read_package("p.json", &wrapped).unwrap();
        assert_eq!(package.pipeline_spec, spec);
        assert!(package.platform_spec.is_some());
    }

    #[test]
    fn zip_and_tarball() {
        let mut zip_bytes = Vec::new();
        {
            let mut writer = zip::ZipWriter::new(std::io::Cursor::new(&mut zip_bytes));
            writer.start_file("README.txt", zip::write::SimpleFileOptions::default()).unwrap();
            writer.write_all(b"hi").unwrap();
            writer.start_file("pipeline.yaml", zip::write::SimpleFileOptions::default()).unwrap();
            writer.write_all(SPEC.as_bytes()).unwrap();
            writer.finish().unwrap();
        }
        assert_eq!(read_package("p.zip", &zip_bytes).unwrap().pipeline_spec["pipelineInfo"]["name"], "p");

        let mut tar_bytes = Vec::new();
        {
            let encoder = flate2::write::GzEncoder::new(&mut tar_bytes, flate2::Compression::default());
            let mut builder = tar::Builder::new(encoder);
            let mut header = tar::Header::new_gnu();
            header.set_size(SPEC.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, "my.yaml", SPEC.as_bytes()).unwrap();
            builder.into_inner().unwrap().finish().unwrap();
        }
        assert_eq!(read_package("p.tar.gz", &tar_bytes).unwrap().pipeline_spec["pipelineInfo"]["name"], "p");
    }

    #[test]
    fn refusals() {
        assert!(read_package("p.yaml", b"").is_err());
        assert!(read_package("p.yaml", b"a: [").is_err());
        assert!(read_package("p.yaml", b"just: a map").is_err());
        assert!(read_package("p.yaml", b"apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n").is_err());
        assert!(read_package("p.bin", &[0x00, 0x01, 0xff]).is_err());
        assert!(read_package("p.zip", b"PK\x03\x04garbage").is_err());
        let big = vec![b'a'; MAX_PACKAGE_BYTES + 1];
        assert!(read_package("p.yaml", &big).unwrap_err().0.contains("largest"));
        let two = format!("{SPEC}---\n{SPEC}");
        assert!(read_package("p.yaml", two.as_bytes()).is_err());
    }
}
