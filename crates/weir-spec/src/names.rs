//! Names KFP derives from a run, that steps and exit handlers can see.

/// The run's job resource name, `{{$.pipeline_job_resource_name}}`: under KFP it is the Argo
/// Workflow's name, which Kubernetes makes from the `generateName` the compiler sets to the
/// pipeline's name and a dash (`retrieveLastValidString` in
/// backend/src/v2/compiler/argocompiler/argo.go): the prefix cut to 58 characters, then five
/// characters from the alphabet of Kubernetes' `rand.String`. Weir derives the five from the
/// run's id instead of drawing them, so the name needs no column and is the same every time it
/// is asked for.
pub fn job_resource_name(pipeline_name: &str, run_id: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let last = pipeline_name.rsplit('/').next().unwrap_or_default();
    let mut prefix: String = last
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
        .collect();
    prefix = prefix.trim_start_matches(['-', '.']).to_string();
    if prefix.is_empty() {
        prefix = "pipeline".into();
    }
    prefix.push('-');
    let prefix: String = prefix.chars().take(58).collect();
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in run_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let mut suffix = String::with_capacity(5);
    for _ in 0..5 {
        suffix.push(ALPHABET[(hash % ALPHABET.len() as u64) as usize] as char);
        hash /= ALPHABET.len() as u64;
    }
    format!("{prefix}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_have_kfps_form_and_are_stable() {
        let a = job_resource_name("pipeline-with-placeholders", "8c1d2c9e-0c5e-4a55-9f0e-5a1b6f1d2e3f");
        assert!(a.starts_with("pipeline-with-placeholders-"), "{a}");
        assert_eq!(a.len(), "pipeline-with-placeholders-".len() + 5);
        assert_eq!(a, job_resource_name("pipeline-with-placeholders", "8c1d2c9e-0c5e-4a55-9f0e-5a1b6f1d2e3f"));
        assert_ne!(a, job_resource_name("pipeline-with-placeholders", "another-run"));
        let long = job_resource_name(&"x".repeat(100), "r");
        assert_eq!(long.len(), 63);
        assert!(job_resource_name("My Pipeline", "r").starts_with("my-pipeline-"));
        assert!(job_resource_name("ns/train", "r").starts_with("train-"));
    }
}
