//! An artifact's page: its metadata, and a viewer by type. Metrics as a table,
//! ClassificationMetrics as a confusion matrix and ROC curve, HTML in a sandboxed frame,
//! Markdown rendered (sanitised), anything else previewed from its first lines.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use weir_store::Artifact;

use super::{metric_text, CLASSIFICATION_METRICS, METRICS};
use crate::chart::{roc_svg, Curve};
use crate::view::{time, value_text, Chrome, UiError, UiResult};
use crate::Ui;

/// How much of a file artifact a preview reads (never the whole of a large dataset).
const PREVIEW_BYTES: usize = 64 * 1024;
/// How much of a Markdown artifact is rendered.
const MARKDOWN_BYTES: usize = 1 << 20;
const PREVIEW_LINES: usize = 50;

pub(crate) struct Confusion {
    pub labels: Vec<String>,
    /// Each row's label (the actual class) and cells: (count, shade 0–10 for the background).
    pub rows: Vec<(String, Vec<(String, u32)>)>,
}

/// KFP's `log_confusion_matrix`: `confusionMatrix: {annotationSpecs: [{displayName}], rows: [{row: [..]}]}`.
pub(crate) fn confusion(metadata: &Value) -> Option<Confusion> {
    let matrix = metadata.get("confusionMatrix")?;
    let labels: Vec<String> = matrix
        .get("annotationSpecs")?
        .as_array()?
        .iter()
        .map(|s| s.get("displayName").map(value_text).unwrap_or_default())
        .collect();
    let rows: Vec<Vec<f64>> = matrix
        .get("rows")?
        .as_array()?
        .iter()
        .map(|r| {
            r.get("row")
                .and_then(Value::as_array)
                .map(|c| c.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default()
        })
        .collect();
    let max = rows.iter().flatten().fold(0f64, |m, v| m.max(*v));
    let rows = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let cells =
                r.into_iter().map(|v| (metric_text(v), if max > 0.0 { (v / max * 10.0) as u32 } else { 0 })).collect();
            (labels.get(i).cloned().unwrap_or_default(), cells)
        })
        .collect();
    Some(Confusion { labels, rows })
}

/// KFP's `log_roc_curve`: `confidenceMetrics: [{falsePositiveRate, recall, confidenceThreshold}]`.
pub(crate) fn roc_points(metadata: &Value) -> Option<Vec<(f64, f64)>> {
    let points: Vec<(f64, f64)> = metadata
        .get("confidenceMetrics")?
        .as_array()?
        .iter()
        .filter_map(|p| Some((p.get("falsePositiveRate")?.as_f64()?, p.get("recall")?.as_f64()?)))
        .collect();
    (!points.is_empty()).then_some(points)
}

#[derive(Template)]
#[template(path = "artifact.html")]
struct ArtifactPage {
    chrome: Chrome,
    title: String,
    artifact: Artifact,
    created: String,
    metadata: Vec<(String, String)>,
    metrics: Vec<(String, String)>,
    confusion: Option<Confusion>,
    roc_svg: String,
    html_src: String,
    markdown: String,
    preview: String,
    preview_note: String,
    raw_href: String,
}

pub(crate) async fn page(State(ui): State<Ui>, chrome: Chrome, Path(id): Path<String>) -> UiResult {
    let artifact = ui.services.execution.artifact(&id).await?;
    let metadata: Vec<(String, String)> = artifact
        .metadata
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), value_text(v))).collect())
        .unwrap_or_default();
    let mut page = ArtifactPage {
        title: format!("{} ({})", artifact.name, artifact.schema_title),
        created: time(artifact.created_at),
        raw_href: format!("{}/artifacts/{}/raw", chrome.base, artifact.id),
        metadata: Vec::new(),
        metrics: Vec::new(),
        confusion: None,
        roc_svg: String::new(),
        html_src: String::new(),
        markdown: String::new(),
        preview: String::new(),
        preview_note: String::new(),
        chrome,
        artifact,
    };
    match page.artifact.schema_title.as_str() {
        METRICS => {
            page.metrics = page
                .artifact
                .metadata
                .as_object()
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), metric_text(v.as_f64()?)))).collect())
                .unwrap_or_default();
        }
        CLASSIFICATION_METRICS => {
            page.confusion = confusion(&page.artifact.metadata);
            if let Some(points) = roc_points(&page.artifact.metadata) {
                page.roc_svg =
                    roc_svg(&[Curve { name: page.artifact.name.clone(), points }]).map_err(UiError::internal)?;
            }
        }
        "system.HTML" => page.html_src = page.raw_href.clone(),
        "system.Markdown" => match ui.services.execution.artifact_head(&id, MARKDOWN_BYTES).await {
            Ok((bytes, size)) => {
                page.markdown = crate::markdown::render(&String::from_utf8_lossy(&bytes));
                if size > bytes.len() as u64 {
                    page.preview_note = format!("the first {} of {size} bytes; download for the rest", bytes.len());
                }
            }
            Err(e) => page.preview_note = e.message,
        },
        _ => {
            page.metadata = metadata.clone();
            match ui.services.execution.artifact_head(&id, PREVIEW_BYTES).await {
                Ok((head, size)) => {
                    match std::str::from_utf8(&head).or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()])) {
                        Ok(text) if !text.contains('\0') => {
                            let lines: Vec<&str> = text.lines().take(PREVIEW_LINES).collect();
                            page.preview = lines.join("\n");
                            page.preview_note = format!("first {} lines of {size} bytes", lines.len());
                        }
                        _ => page.preview_note = format!("{size} bytes of binary data"),
                    }
                }
                Err(e) => page.preview_note = e.message,
            }
        }
    }
    if page.metadata.is_empty() && page.metrics.is_empty() {
        page.metadata = metadata;
    }
    crate::view::html(page)
}

/// `GET /artifacts/{id}/raw`: the file. HTML is served for the sandboxed frame, with a policy
/// that makes it an opaque origin even when opened directly: its scripts run but cannot reach
/// weir's pages, cookies or API. Everything else is a download.
pub(crate) async fn raw(State(ui): State<Ui>, Path(id): Path<String>) -> UiResult<Response> {
    let artifact = ui.services.execution.artifact(&id).await?;
    let bytes = ui.services.execution.artifact_content(&id).await?;
    let sandbox = "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   img-src data:; frame-ancestors 'self'";
    if artifact.schema_title == "system.HTML" {
        return Ok((
            [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, sandbox)],
            bytes,
        )
            .into_response());
    }
    let name: String =
        artifact.name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'".to_string()),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kfp_classification_metrics_are_read() {
        let metadata = serde_json::json!({
            "confusionMatrix": {"annotationSpecs": [{"displayName": "cat"}, {"displayName": "dog"}],
                                "rows": [{"row": [8, 2]}, {"row": [1, 9]}]},
            "confidenceMetrics": [{"confidenceThreshold": 0.9, "falsePositiveRate": 0.1, "recall": 0.6},
                                  {"confidenceThreshold": 0.1, "falsePositiveRate": 0.8, "recall": 1.0}]
        });
        let matrix = confusion(&metadata).unwrap();
        assert_eq!(matrix.labels, ["cat", "dog"]);
        assert_eq!(matrix.rows[1].0, "dog");
        assert_eq!(matrix.rows[1].1[1], ("9".to_string(), 10));
        assert_eq!(roc_points(&metadata).unwrap(), [(0.1, 0.6), (0.8, 1.0)]);
        assert!(confusion(&serde_json::json!({})).is_none());
    }
}
