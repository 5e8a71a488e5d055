//! Pipelines and their versions: list, upload (a new pipeline or a new version), a version's
//! graph, inputs and YAML, and the way to a new run of it.

use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use weir_api_model::ListParams;
use weir_service::UploadParams;
use weir_spec::ir::PipelineSpec;

use crate::graph::Graph;
use crate::view::{html, query_escape, time, value_text, Chrome, UiError, UiResult};
use crate::Ui;

pub(crate) struct PipelineRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListQuery {
    pub name: String,
    pub page_token: String,
}

#[derive(Template)]
#[template(path = "pipelines.html")]
struct PipelinesPage {
    chrome: Chrome,
    title: String,
    rows: Vec<PipelineRow>,
    name: String,
    next_href: String,
}

pub(crate) async fn list(State(ui): State<Ui>, chrome: Chrome, Query(q): Query<ListQuery>) -> UiResult {
    let filter = if q.name.is_empty() {
        String::new()
    } else {
        serde_json::json!({"predicates": [{"key": "display_name", "operation": "IS_SUBSTRING", "string_value": q.name}]})
            .to_string()
    };
    let params = ListParams {
        page_size: Some("50".into()),
        page_token: q.page_token.clone(),
        sort_by: "created_at desc".into(),
        filter,
        ..Default::default()
    };
    let page = ui.services.pipelines.list(&params).await?;
    let rows = page
        .items
        .into_iter()
        .map(|p| PipelineRow {
            name: if p.display_name.is_empty() { p.name } else { p.display_name },
            id: p.id,
            description: p.description,
            created: time(p.created_at),
        })
        .collect();
    let next_href = if page.next_page_token.is_empty() {
        String::new()
    } else {
        format!(
            "{}/pipelines?name={}&page_token={}",
            chrome.base,
            query_escape(&q.name),
            query_escape(&page.next_page_token)
        )
    };
    html(PipelinesPage { chrome, title: "Pipelines".into(), rows, name: q.name, next_href })
}

/// A package and its form fields out of a multipart upload.
async fn read_upload(mut multipart: Multipart) -> UiResult<(UploadParams, String, Bytes)> {
    let mut params = UploadParams::default();
    let mut file: Option<(String, Bytes)> = None;
    while let Some(field) = multipart.next_field().await.map_err(|e| UiError::bad_request(e.to_string()))? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let file_name = field.file_name().unwrap_or("pipeline.yaml").to_string();
            let bytes = field.bytes().await.map_err(|e| UiError::bad_request(e.to_string()))?;
            file = Some((file_name, bytes));
            continue;
        }
        let text = field.text().await.map_err(|e| UiError::bad_request(e.to_string()))?;
        let text = Some(text.trim().to_string()).filter(|t| !t.is_empty());
        match name.as_str() {
            "name" => params.display_name = text,
            "description" => params.description = text,
            _ => {}
        }
    }
    let (file_name, bytes) =
        file.filter(|(_, b)| !b.is_empty()).ok_or_else(|| UiError::bad_request("choose a pipeline file to upload"))?;
    Ok((params, file_name, bytes))
}

/// `POST /pipelines/upload` (multipart: file, name, description).
pub(crate) async fn upload(State(ui): State<Ui>, chrome: Chrome, multipart: Multipart) -> UiResult<Response> {
    let (mut params, file_name, bytes) = read_upload(multipart).await?;
    params.name = params.display_name.clone();
    let (pipeline, _) = ui.services.pipelines.upload(&params, &file_name, bytes).await?;
    Ok(chrome.see_other(&format!("/pipelines/{}", pipeline.id)))
}

/// `POST /pipelines/{id}/versions` (multipart: file, name, description).
pub(crate) async fn upload_version(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path(id): Path<String>,
    multipart: Multipart,
) -> UiResult<Response> {
    let (mut params, file_name, bytes) = read_upload(multipart).await?;
    params.name = params.display_name.clone();
    params.pipelineid = Some(id.clone());
    let version = ui.services.pipelines.upload_version(&params, &file_name, bytes).await?;
    Ok(chrome.see_other(&format!("/pipelines/{id}/versions/{}", version.id)))
}

/// `POST /pipelines/{id}/delete`: the pipeline and its versions (runs keep their copies).
pub(crate) async fn delete(State(ui): State<Ui>, chrome: Chrome, Path(id): Path<String>) -> UiResult<Response> {
    ui.services.pipelines.delete(&id, true).await?;
    Ok(chrome.see_other("/pipelines"))
}

pub(crate) struct VersionRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "pipeline.html")]
struct PipelinePage {
    chrome: Chrome,
    title: String,
    id: String,
    description: String,
    created: String,
    versions: Vec<VersionRow>,
}

pub(crate) async fn details(State(ui): State<Ui>, chrome: Chrome, Path(id): Path<String>) -> UiResult {
    let pipeline = ui.services.pipelines.get(&id).await?;
    let params = ListParams { page_size: Some("200".into()), sort_by: "created_at desc".into(), ..Default::default() };
    let versions = ui.services.pipelines.list_versions(&id, &params).await?;
    let versions = versions
        .items
        .into_iter()
        .map(|v| VersionRow {
            name: if v.display_name.is_empty() { v.name } else { v.display_name },
            id: v.id,
            description: v.description,
            created: time(v.created_at),
        })
        .collect();
    html(PipelinePage {
        chrome,
        title: if pipeline.display_name.is_empty() { pipeline.name } else { pipeline.display_name },
        id: pipeline.id,
        description: pipeline.description,
        created: time(pipeline.created_at),
        versions,
    })
}

pub(crate) struct InputRow {
    pub name: String,
    pub kind: String,
    pub default: String,
    pub optional: bool,
}

#[derive(Template)]
#[template(path = "version.html")]
struct VersionPage {
    chrome: Chrome,
    title: String,
    pipeline_id: String,
    pipeline_name: String,
    version_id: String,
    description: String,
    created: String,
    graph_svg: String,
    inputs: Vec<InputRow>,
    yaml: String,
}

/// The root inputs of a spec, as a table shows them.
pub(crate) fn input_rows(spec: &PipelineSpec) -> Vec<InputRow> {
    let mut rows: Vec<InputRow> = spec
        .root
        .input_definitions
        .parameters
        .iter()
        .map(|(name, def)| InputRow {
            name: name.clone(),
            kind: def.parameter_type.clone(),
            default: def.default_value.as_ref().map(value_text).unwrap_or_default(),
            optional: def.is_optional || def.default_value.is_some(),
        })
        .collect();
    rows.extend(spec.root.input_definitions.artifacts.iter().map(|(name, def)| InputRow {
        name: name.clone(),
        kind: def.artifact_type.schema_title.clone(),
        default: String::new(),
        optional: def.is_optional,
    }));
    rows
}

pub(crate) async fn version(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path((pipeline_id, version_id)): Path<(String, String)>,
) -> UiResult {
    let pipeline = ui.services.pipelines.get(&pipeline_id).await?;
    let version = ui.services.pipelines.get_version(&pipeline_id, &version_id).await?;
    let spec = PipelineSpec::parse(&version.pipeline_spec)
        .map_err(|e| UiError::internal(format!("the version's spec cannot be read: {e}")))?;
    let graph_svg = Graph::of_component(&spec, &spec.root).to_svg().map_err(UiError::internal)?;
    let mut yaml = serde_norway::to_string(&version.pipeline_spec).map_err(UiError::internal)?;
    if let Some(platform) = &version.platform_spec {
        yaml.push_str("---\n");
        yaml.push_str(&serde_norway::to_string(platform).map_err(UiError::internal)?);
    }
    html(VersionPage {
        chrome,
        title: if version.display_name.is_empty() { version.name } else { version.display_name },
        pipeline_name: if pipeline.display_name.is_empty() { pipeline.name } else { pipeline.display_name },
        pipeline_id,
        version_id,
        description: version.description,
        created: time(version.created_at),
        graph_svg,
        inputs: input_rows(&spec),
        yaml,
    })
}
