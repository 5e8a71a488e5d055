use super::*;
use std::time::Duration;
use weir_engine::driver::{ConfigEnv, PodVolume};

fn settings() -> Settings {
    Settings {
        namespace: "steps".into(),
        service_account: Some("runner".into()),
        launcher_image: "ghcr.io/weir/weir:1".into(),
        launcher_pull_policy: Some("IfNotPresent".into()),
        store_url: "s3://bucket/artifacts".into(),
        store_endpoint: Some("http://minio:9000".into()),
        store_secret: Some("store-credentials".into()),
        default_cpu_request: Some("100m".into()),
        default_memory_request: None,
        pending_timeout: Duration::from_secs(60),
        step_env: vec![("PIP_INDEX_URL".into(), "http://pypi.local/simple".into())],
        deployment: "weir".into(),
        kubeconfig: None,
    }
}

fn platform(json: Value) -> weir_spec::platform::ExecutorConfig {
    serde_json::from_value(json).unwrap()
}

fn spec(pod: PodRequest) -> ProcessSpec {
    ProcessSpec {
        task_id: "0b5e6a0c-1f2d-4c9e-9a55-3f1c2d4e5f60".into(),
        argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
        env: vec![("A".into(), "1".into())],
        workdir: PathBuf::from("/var/lib/weir/work/runs/r/t/1"),
        log_path: PathBuf::from("/var/lib/weir/work/runs/r/t/1/log.txt"),
        binds: vec![(PathBuf::from("/var/lib/weir/work/runs/r/t/1/mnt"), PathBuf::from("/s3"))],
        pod: Some(Box::new(pod)),
    }
}

fn request(platform: weir_spec::platform::ExecutorConfig, resources: Option<Value>) -> PodRequest {
    PodRequest {
        run_id: "run-1".into(),
        task_name: "train".into(),
        attempt: 1,
        image: "python:3.11".into(),
        resources,
        platform,
        config_env: vec![ConfigEnv {
            kind: StepConfigKind::Secret,
            name: "db".into(),
            key: "password".into(),
            env_var: "DB_PASSWORD".into(),
            optional: false,
        }],
        volumes: vec![
            PodVolume {
                mount_path: "/data".into(),
                source: VolumeSource::Claim { name: "my-pvc".into(), sub_path: "part".into() },
            },
            PodVolume {
                mount_path: "/cfg".into(),
                source: VolumeSource::ConfigMap { name: "cfg".into(), optional: true },
            },
            PodVolume { mount_path: "/scratch".into(), source: VolumeSource::EmptyDir { name: "scratch".into() } },
        ],
        deadline_seconds: Some(300),
    }
}

#[test]
fn names_are_the_same_for_one_attempt_and_fit_a_label() {
    let a = job_name("0b5e6a0c-1f2d-4c9e-9a55-3f1c2d4e5f60", 1);
    assert_eq!(a, job_name("0b5e6a0c-1f2d-4c9e-9a55-3f1c2d4e5f60", 1));
    assert_ne!(a, job_name("0b5e6a0c-1f2d-4c9e-9a55-3f1c2d4e5f60", 2));
    assert!(a.len() <= 63 && a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    let folder = weir_artifacts::layout::attempt_dir(Path::new("/w"), "r", "0b5e6a0c-1f2d", 3);
    assert_eq!(attempt_of(&folder), 3);
}

#[test]
fn a_job_carries_every_platform_feature_and_nothing_kubernetes_does_not_know() {
    let platform = platform(json!({
        "nodeSelector": {"labels": {"disk": "ssd"}},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": "30"}],
        "nodeAffinity": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                         {"matchExpressions": [{"key": "size", "operator": "In", "values": ["big"]}], "weight": 10}],
        "podAffinity": [{"matchPodLabels": {"app": "db"}, "topologyKey": "kubernetes.io/hostname", "anti": true}],
        "imagePullSecret": [{"secretName": "regcred"}],
        "imagePullPolicy": "Always",
        "podMetadata": {"labels": {"team": "ml"}, "annotations": {"note": "x"}},
        "fieldPathAsEnv": [{"name": "NODE", "fieldPath": "spec.nodeName"}],
        "enabledSharedMemory": {"volumeName": "shm", "size": "1Gi"},
        "genericEphemeralVolume": [{"volumeName": "eph", "mountPath": "/eph", "accessModes": ["ReadWriteOnce"], "size": "5Gi", "storageClassName": "fast"}],
        "initContainers": [{"name": "prep", "image": "busybox", "command": ["sh", "-c", "true"], "volumeMounts": [{"volumeName": "scratch", "mountPath": "/scratch"}]}],
        "securityContext": {"runAsUser": "1000", "runAsNonRoot": true}
    }));
    let resources = json!({
        "resourceCpuLimit": "2", "resourceMemoryLimit": "4Gi", "resourceMemoryRequest": "1Gi",
        "accelerator": {"resourceType": "nvidia.com/gpu", "resourceCount": "1"}
    });
    let spec = spec(request(platform, Some(resources)));
    let built = job(&settings(), &spec, spec.pod.as_deref().unwrap()).unwrap();
    let v = serde_json::to_value(&built).unwrap();
    assert_eq!(v["metadata"]["name"], job_name(&spec.task_id, 1));
    assert_eq!(v["spec"]["backoffLimit"], 0);
    let pod = &v["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["serviceAccountName"], "runner");
    assert_eq!(pod["activeDeadlineSeconds"], 300);
    assert_eq!(pod["nodeSelector"]["disk"], "ssd");
    assert_eq!(pod["tolerations"][0]["tolerationSeconds"], 30);
    assert_eq!(pod["imagePullSecrets"][0]["name"], "regcred");
    let affinity = &pod["affinity"];
    assert_eq!(
        affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            ["matchExpressions"][0]["key"],
        "zone"
    );
    assert_eq!(affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"], 10);
    assert_eq!(
        affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"]
            ["matchLabels"]["app"],
        "db"
    );
    let labels = &v["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["team"], "ml");
    assert_eq!(labels[LABEL_RUN], "run-1");
    assert_eq!(labels[LABEL_ATTEMPT], "1");
    assert_eq!(v["spec"]["template"]["metadata"]["annotations"]["note"], "x");

    let init = pod["initContainers"].as_array().unwrap();
    assert_eq!(init[0]["image"], "ghcr.io/weir/weir:1");
    assert_eq!(init[0]["args"], json!(["launcher", "install", LAUNCHER_DIR]));
    assert_eq!(init[1]["name"], "prep");
    assert_eq!(init[1]["volumeMounts"][0]["name"], "scratch");
    let main = &pod["containers"][0];
    assert_eq!(main["image"], "python:3.11");
    assert_eq!(main["imagePullPolicy"], "Always");
    assert_eq!(main["securityContext"]["runAsUser"], 1000);
    let command: Vec<String> = serde_json::from_value(main["command"].clone()).unwrap();
    assert_eq!(command[0], "/weir-launcher/weir");
    assert!(command.ends_with(&["--".into(), "sh".into(), "-c".into(), "echo hi".into()]), "{command:?}");
    assert!(command.contains(&"/var/lib/weir/work/runs/r/t/1/mnt=/s3".to_string()));
    assert_eq!(main["resources"]["limits"]["cpu"], "2");
    assert_eq!(main["resources"]["limits"]["memory"], "4Gi");
    assert_eq!(main["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(main["resources"]["requests"]["memory"], "1Gi");
    // The operator's default request only where the step said nothing of the resource.
    assert!(main["resources"]["requests"].get("cpu").is_none());
    assert_eq!(main["envFrom"][0]["secretRef"]["name"], "store-credentials");
    let env: HashMap<String, Value> =
        main["env"].as_array().unwrap().iter().map(|e| (e["name"].as_str().unwrap().to_string(), e.clone())).collect();
    assert_eq!(env["A"]["value"], "1");
    assert_eq!(env["PIP_INDEX_URL"]["value"], "http://pypi.local/simple");
    assert_eq!(env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"], "db");
    assert_eq!(env["NODE"]["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    assert_eq!(env["KFP_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    let mounts = main["volumeMounts"].as_array().unwrap();
    let at = |path: &str| mounts.iter().find(|m| m["mountPath"] == path).unwrap().clone();
    assert_eq!(at("/data")["subPath"], "part");
    assert_eq!(at("/var/lib/weir/work/runs/r/t/1")["name"], "weir-attempt");
    assert_eq!(at("/dev/shm")["name"], "weir-shm");
    let volumes = pod["volumes"].as_array().unwrap();
    let named = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap().clone();
    assert_eq!(named(at("/data")["name"].as_str().unwrap())["persistentVolumeClaim"]["claimName"], "my-pvc");
    assert_eq!(named("scratch")["emptyDir"], json!({}));
    assert_eq!(
        named(at("/eph")["name"].as_str().unwrap())["ephemeral"]["volumeClaimTemplate"]["spec"]["storageClassName"],
        "fast"
    );
}

use std::collections::HashMap;

#[test]
fn defaults_fill_what_a_step_does_not_ask_and_numbers_become_quantities() {
    let numbers = spec(request(Default::default(), Some(json!({"cpuLimit": 0.5, "memoryLimit": 2.0}))));
    let v = serde_json::to_value(job(&settings(), &numbers, numbers.pod.as_deref().unwrap()).unwrap()).unwrap();
    let resources = &v["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"]["cpu"], "0.5");
    assert_eq!(resources["limits"]["memory"], "2G");
    let nothing = spec(request(Default::default(), None));
    let v = serde_json::to_value(job(&settings(), &nothing, nothing.pod.as_deref().unwrap()).unwrap()).unwrap();
    assert_eq!(v["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"], "100m");
}

#[test]
fn a_field_kubernetes_does_not_know_is_refused() {
    let platform = platform(json!({"initContainers": [{"name": "x", "image": "busybox", "restartPolicyy": "no"}]}));
    // Only fields kfp-kubernetes defines are copied: the misspelt one is left out, not passed on.
    let misspelt = spec(request(platform, None));
    assert!(job(&settings(), &misspelt, misspelt.pod.as_deref().unwrap()).is_ok());
    let mut given = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "i", "imagePullPolicyy": "Always"}]}}}});
    let error = strictly(given.clone()).unwrap_err();
    assert!(error.contains("imagePullPolicyy"), "{error}");
    given["spec"]["template"]["spec"]["containers"][0].as_object_mut().unwrap().remove("imagePullPolicyy");
    assert!(strictly(given).is_ok());
    let bad = request(Default::default(), Some(json!({"accelerator": {"type": "nvidia.com/gpu", "count": "two"}})));
    let bad = spec(bad);
    assert!(job(&settings(), &bad, bad.pod.as_deref().unwrap()).unwrap_err().contains("whole number"));
}
