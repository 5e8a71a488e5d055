//! kfp-kubernetes in the planner: the tasks a step's platform configuration makes it wait for,
//! and `CreatePVC`/`DeletePVC`, which KFP's driver runs itself.

use serde_json::Value;
use weir_spec::ir::{ComponentSpec, TaskSpec};
use weir_store::{RuntimeState, TaskIo, TaskKind};

use super::{error, new_id, NewTask, Place, Planner};

/// Executors KFP's driver runs itself.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stub {
    CreatePvc,
    DeletePvc,
}

impl Planner<'_> {
    /// Sibling tasks whose outputs name a secret or config map the task's step is given.
    pub(super) fn platform_producers(&self, spec: &TaskSpec) -> Vec<String> {
        let pipeline = &self.view.spec;
        pipeline
            .components
            .get(&spec.component_ref.name)
            .and_then(|c| c.executor_label.as_ref())
            .and_then(|label| pipeline.platform.executor(label))
            .map(|executor| executor.producers())
            .unwrap_or_default()
    }

    /// kfp-kubernetes' `CreatePVC` and `DeletePVC`: executors whose image is one of Argo's
    /// stubs and that have no command; KFP's driver does their work itself
    /// (`createPVC`, `deletePVC` in backend/src/v2/driver/k8s.go).
    pub(super) fn kubernetes_stub(&self, component: &ComponentSpec) -> Option<Stub> {
        let label = component.executor_label.as_ref()?;
        let container = self.view.spec.deployment_spec.executors.get(label)?.container.as_ref()?;
        if !container.command.is_empty() || !container.args.is_empty() {
            return None;
        }
        match container.image.as_str() {
            "argostub/createpvc" => Some(Stub::CreatePvc),
            "argostub/deletepvc" => Some(Stub::DeletePvc),
            _ => None,
        }
    }

    /// A PVC of the local driver is a folder of weir's, mounted for the steps that mount it:
    /// creating one names it as KFP's driver does (the folder is made on first use), deleting
    /// one removes it.
    pub(super) fn run_stub(&mut self, at: &Place, stub: Stub, inputs: TaskIo) {
        let text = |key: &str| inputs.parameters.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let outputs = match stub {
            Stub::CreatePvc => {
                let (name, suffix) = (text("pvc_name"), text("pvc_name_suffix"));
                if !name.is_empty() && !suffix.is_empty() {
                    let message = "CreatePVC: give pvc_name or pvc_name_suffix, not both";
                    self.decided(at, TaskKind::Container, RuntimeState::Failed, inputs, error(message));
                    return;
                }
                let name = if name.is_empty() { format!("{}{suffix}", new_id()) } else { name };
                self.step.created_volumes.push((name.clone(), inputs.parameters.clone()));
                TaskIo {
                    parameters: [("name".to_string(), Value::String(name))].into_iter().collect(),
                    ..TaskIo::default()
                }
            }
            Stub::DeletePvc => {
                let name = text("pvc_name");
                if name.is_empty() {
                    self.decided(
                        at,
                        TaskKind::Container,
                        RuntimeState::Failed,
                        inputs,
                        error("DeletePVC: pvc_name is required"),
                    );
                    return;
                }
                self.step.deleted_volumes.push(name);
                TaskIo::default()
            }
        };
        let id = self.create(NewTask::running(&at.parent_id, &at.name, &at.display, TaskKind::Container, inputs));
        self.update(&id, |t| t.outputs = outputs);
        self.set_state(&id, RuntimeState::Succeeded, None);
    }
}
