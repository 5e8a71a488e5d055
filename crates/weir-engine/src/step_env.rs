//! The environment a step starts with. A step is user code: it gets what KFP gives a step's
//! container (its own `env`, and `KFP_POD_NAME`/`KFP_POD_UID`, see kubeflow/pipelines
//! `backend/src/v2/compiler/argocompiler/container.go`), the system variables any program
//! expects, and what the operator names in `executor.step_env`. Nothing else of weir's own
//! environment reaches it: not `WEIR_METADATA` (which may hold the database password), not
//! the S3 keys.

/// Variables of weir's environment every step gets: where programs are, who runs them and in
/// which locale. None of them is a credential.
const SYSTEM: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM"];

/// The base environment of every step: [`SYSTEM`] and the locale's `LC_*` from `parent`, then
/// the operator's entries, each `NAME` (passed from `parent` when set there) or `NAME=value`.
pub fn base_environment(
    parent: impl IntoIterator<Item = (String, String)>,
    operator: &[String],
) -> Vec<(String, String)> {
    let parent: Vec<(String, String)> = parent.into_iter().collect();
    let mut env: Vec<(String, String)> =
        parent.iter().filter(|(name, _)| SYSTEM.contains(&name.as_str()) || name.starts_with("LC_")).cloned().collect();
    for entry in operator {
        let (name, value) = match entry.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (entry.clone(), parent.iter().find(|(n, _)| n == entry).map(|(_, v)| v.clone())),
        };
        let Some(value) = value else { continue };
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    }
    env
}

/// An operator's `step_env` entry that is not `NAME` or `NAME=value`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step_env entry {0:?} is not NAME or NAME=value")]
pub struct BadEntry(pub String);

/// Whether an operator's entry is well formed: a variable name, optionally `=value`.
pub fn check_entry(entry: &str) -> Result<(), BadEntry> {
    let name = entry.split_once('=').map_or(entry, |(name, _)| name);
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(BadEntry(entry.to_string()))
    }
}

/// Sets `name` in `env`, replacing an earlier value.
pub fn set(env: &mut Vec<(String, String)>, name: &str, value: impl Into<String>) {
    env.retain(|(n, _)| n != name);
    env.push((name.to_string(), value.into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_system_and_named_variables_pass() {
        let parent = vars(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
            ("LC_ALL", "C.UTF-8"),
            ("WEIR_METADATA", "mysql://weir:secret@db/weir"),
            ("AWS_SECRET_ACCESS_KEY", "s3cret"),
            ("HTTPS_PROXY", "http://proxy:3128"),
        ]);
        let env = base_environment(parent.clone(), &[]);
        assert_eq!(env, vars(&[("PATH", "/usr/bin"), ("HOME", "/root"), ("LC_ALL", "C.UTF-8")]));
        let env = base_environment(parent, &["HTTPS_PROXY".into(), "MODE=fast".into(), "UNSET".into()]);
        assert!(env.contains(&("HTTPS_PROXY".into(), "http://proxy:3128".into())));
        assert!(env.contains(&("MODE".into(), "fast".into())));
        assert!(!env.iter().any(|(n, _)| n == "UNSET" || n.starts_with("WEIR_") || n.starts_with("AWS_")));
    }

    #[test]
    fn entries_are_checked() {
        assert!(check_entry("HTTPS_PROXY").is_ok());
        assert!(check_entry("A=b=c").is_ok());
        assert!(check_entry("=x").is_err());
        assert!(check_entry("1A").is_err());
        assert!(check_entry("A B").is_err());
    }
}
