//! Retention: an experiment's own policies and the history of removals (`/apis/weir/v1`).

use std::sync::Arc;

use weir_store::{GcRecord, RetentionPolicy};

use crate::{Context, ServiceError, ServiceResult};

/// History records per page when a request names none, and at most.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

#[derive(Clone)]
pub struct RetentionService {
    ctx: Arc<Context>,
}

/// One page of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub records: Vec<GcRecord>,
    /// Empty on the last page.
    pub next_page_token: String,
}

impl RetentionService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    /// Removals, newest first. The token is the previous page's (`at:id` of its last record).
    pub async fn history(&self, page_size: Option<i64>, page_token: &str) -> ServiceResult<HistoryPage> {
        let size = page_size.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&size) {
            return Err(ServiceError::invalid(format!("page_size must be between 1 and {MAX_PAGE}, got {size}")));
        }
        let before = if page_token.is_empty() {
            None
        } else {
            let (at, id) = page_token
                .split_once(':')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())))
                .ok_or_else(|| ServiceError::invalid(format!("invalid page_token {page_token:?}")))?;
            Some((at, id))
        };
        let mut records = self.ctx.store.gc_history(size + 1, before).await?;
        let next_page_token = if records.len() as i64 > size {
            records.truncate(size as usize);
            records.last().map(|r| format!("{}:{}", r.at, r.id)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(HistoryPage { records, next_page_token })
    }

    /// An experiment's own policies (None: the deployment's apply).
    pub async fn experiment_policies(&self, experiment_id: &str) -> ServiceResult<Option<Vec<RetentionPolicy>>> {
        self.ctx.store.get_experiment(experiment_id).await?;
        Ok(self.ctx.store.get_experiment_policies(experiment_id).await?)
    }

    /// Gives an experiment policies of its own, replacing the deployment's for its runs (an
    /// empty list keeps all of them), or (None) goes back to the deployment's.
    pub async fn set_experiment_policies(
        &self,
        experiment_id: &str,
        policies: Option<Vec<RetentionPolicy>>,
    ) -> ServiceResult<()> {
        if let Some(policies) = &policies {
            let mut names = std::collections::BTreeSet::new();
            for policy in policies {
                policy.validate().map_err(ServiceError::invalid)?;
                if !names.insert(policy.name.as_str()) {
                    return Err(ServiceError::invalid(format!("two policies are named {:?}", policy.name)));
                }
            }
        }
        let now = self.ctx.now();
        Ok(self.ctx.store.set_experiment_policies(experiment_id, policies.as_deref(), now).await?)
    }
}
