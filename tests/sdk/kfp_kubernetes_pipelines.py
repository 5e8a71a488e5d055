"""Pipelines for test_kfp_kubernetes.py: kfp-kubernetes platform configuration, in the shapes
KFP's end-to-end pipelines use it (`critical/pipeline_with_secret_as_env`,
`critical/pipeline_with_pod_metadata`, `critical/pipeline_with_volume_long_name`,
`parallel_and_nested/parallel_for_secret`, `gpu-scheduling/nvidia_gpu_scheduling_check`).
Secret names are pipeline parameters so that every test run uses its own.
"""
from kfp import dsl, kubernetes

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def read_env(names: list) -> dict:
    import os
    return {name: os.environ.get(name) for name in names}


@dsl.component(base_image=IMAGE)
def emit(text: str) -> str:
    return text


@dsl.pipeline(name='weir-k8s-secrets')
def secrets_pipeline(from_input: str, from_output: str, config_map: str, missing: str):
    producer = emit(text=from_output)
    task = read_env(names=['USER_NAME', 'PASSWORD_OUT', 'SETTING', 'OPTIONAL', 'NOT_SET'])
    # Named by a pipeline input, by a task output and with a missing, optional one.
    kubernetes.use_secret_as_env(task, secret_name=from_input, secret_key_to_env={'username': 'USER_NAME'})
    kubernetes.use_secret_as_env(task, secret_name=producer.output, secret_key_to_env={'password': 'PASSWORD_OUT'})
    kubernetes.use_config_map_as_env(task, config_map_name=config_map, config_map_key_to_env={'setting': 'SETTING'})
    kubernetes.use_secret_as_env(task, secret_name=missing, secret_key_to_env={'k': 'OPTIONAL'}, optional=True)
    with dsl.ParallelFor(['a', 'b'], parallelism=1):
        looped = read_env(names=['USER_NAME'])
        kubernetes.use_secret_as_env(looped, secret_name=from_input, secret_key_to_env={'username': 'USER_NAME'})


@dsl.pipeline(name='weir-k8s-missing-secret')
def missing_secret_pipeline(name: str):
    task = read_env(names=['X'])
    kubernetes.use_secret_as_env(task, secret_name=name, secret_key_to_env={'k': 'X'})


@dsl.pipeline(name='weir-k8s-pod-metadata')
def pod_metadata_pipeline():
    task = read_env(names=['ANNOTATION', 'LABEL', 'NO_LABEL', 'POD_NAME'])
    kubernetes.add_pod_annotation(task, 'task-annotation', 'annotation-1')
    kubernetes.add_pod_label(task, 'task-label', 'label-1')
    kubernetes.use_field_path_as_env(task, 'ANNOTATION', "metadata.annotations['task-annotation']")
    kubernetes.use_field_path_as_env(task, 'LABEL', "metadata.labels['task-label']")
    kubernetes.use_field_path_as_env(task, 'NO_LABEL', "metadata.labels['absent']")
    kubernetes.use_field_path_as_env(task, 'POD_NAME', 'metadata.name')
    # Scheduling hints: nothing to choose on one host, accepted.
    kubernetes.add_toleration(task, key='nvidia.com/gpu', operator='Exists', effect='NoSchedule')
    kubernetes.add_node_selector(task, 'disktype', 'ssd')
    kubernetes.set_image_pull_secrets(task, ['registry-credentials'])


@dsl.component(base_image=IMAGE)
def sleep_for(seconds: int):
    import time
    time.sleep(seconds)


@dsl.pipeline(name='weir-k8s-timeout')
def timeout_pipeline():
    kubernetes.set_timeout(sleep_for(seconds=60), 2)


@dsl.pipeline(name='weir-k8s-pvc')
def pvc_pipeline():
    pvc = kubernetes.CreatePVC(pvc_name_suffix='-my-pvc', access_modes=['ReadWriteOnce'], size='5Mi',
                               storage_class_name='standard')
    used = emit(text=pvc.outputs['name'])
    kubernetes.DeletePVC(pvc_name=pvc.outputs['name']).after(used)


@dsl.component(base_image=IMAGE)
def write_at(path: str, text: str):
    import os
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


@dsl.component(base_image=IMAGE)
def read_at(paths: list) -> dict:
    import os
    return {p: open(p).read() if os.path.exists(p) else None for p in paths}


def make_volumes_pipeline(mount: str):
    """A PVC shared by two steps of a loop-free pipeline (KFP's `parallel_for_mount_pvc` mounts
    at `/data`; tests mount under their own folder), an empty dir and a secret as files."""

    @dsl.pipeline(name='weir-k8s-volumes')
    def volumes_pipeline(secret: str):
        pvc = kubernetes.CreatePVC(pvc_name_suffix='-my-pvc', access_modes=['ReadWriteOnce'], size='5Mi')
        writer = write_at(path=f'{mount}/pvc/shared.txt', text='kept on the PVC')
        kubernetes.mount_pvc(writer, pvc_name=pvc.outputs['name'], mount_path=f'{mount}/pvc')
        reader = read_at(paths=[f'{mount}/pvc/shared.txt', f'{mount}/scratch/x', f'{mount}/secret/password'])
        reader.after(writer)
        kubernetes.mount_pvc(reader, pvc_name=pvc.outputs['name'], mount_path=f'{mount}/pvc')
        kubernetes.empty_dir_mount(reader, volume_name='scratch', mount_path=f'{mount}/scratch')
        kubernetes.use_secret_as_volume(reader, secret_name=secret, mount_path=f'{mount}/secret')
        kubernetes.DeletePVC(pvc_name=pvc.outputs['name']).after(reader)

    return volumes_pipeline


@dsl.pipeline(name='weir-k8s-ephemeral')
def ephemeral_pipeline():
    task = emit(text='x')
    kubernetes.add_ephemeral_volume(task, volume_name='v', mount_path='/data', access_modes=['ReadWriteOnce'],
                                    size='1Gi')
