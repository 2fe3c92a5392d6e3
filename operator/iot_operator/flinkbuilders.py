"""spec -> the Flink job's manifests: a FlinkDeployment (Flink Kubernetes Operator), or JobManager + TaskManager
Deployments and a JobManager Service (application mode), and the checkpoint claim. Pure."""

from __future__ import annotations

from iot_operator.manifests import (
    CONTAINER_SECURITY,
    POD_SECURITY,
    Manifest,
    child_meta,
    child_name,
    env_vars,
    labels,
    make_container,
    make_workload,
    selector,
    shared_env,
)
from iot_operator.spec import PipelineSpec
from iot_operator.workloads import Resources

FLINK_DEPLOYMENT_API = "flink.apache.org/v1beta1"
FLINK_ENTRYPOINT = "/docker-entrypoint.sh"  # of the official Flink images the stream-job image builds on
FLINK_UID = 9999  # the flink user of the Flink images (services/stream_job/Dockerfile: USER 9999:9999)
FLINK_DATA = "/flink-data"  # mount path of the checkpoint volume in the Flink pods
FLINK_DATA_VOLUME = "flink-data"
# Flink pods also get the flink user's group on the checkpoint volume (fsGroup), so it is writable
FLINK_POD_SECURITY: Manifest = {**POD_SECURITY, "runAsUser": FLINK_UID, "runAsGroup": FLINK_UID, "fsGroup": FLINK_UID}


def uses_checkpoint_volume(p: PipelineSpec) -> bool:
    """Checkpoints live on a PersistentVolumeClaim unless the spec gives a storage URI."""
    return not p.flink.checkpoint_storage_uri


def checkpoint_dir(p: PipelineSpec) -> str:
    return p.flink.checkpoint_storage_uri or f"file://{FLINK_DATA}/checkpoints"


def savepoint_dir(p: PipelineSpec) -> str | None:
    if p.flink.savepoints_uri:
        return p.flink.savepoints_uri
    return f"file://{FLINK_DATA}/savepoints" if uses_checkpoint_volume(p) else None


def ha_dir(p: PipelineSpec) -> str:
    """Flink's high-availability metadata (FlinkDeployment mode): beside the checkpoints."""
    return f"{checkpoint_dir(p).rstrip('/')}/ha" if p.flink.checkpoint_storage_uri else f"file://{FLINK_DATA}/ha"


def checkpoint_claim(p: PipelineSpec) -> Manifest | None:
    """The checkpoint volume's PersistentVolumeClaim (owned by the pipeline), or None with a storage URI."""
    if not uses_checkpoint_volume(p):
        return None
    v = p.flink.checkpoint_volume
    spec: Manifest = {"accessModes": [v.access_mode], "resources": {"requests": {"storage": v.size}}}
    if v.storage_class:
        spec["storageClassName"] = v.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": child_meta(p, child_name(p, "flink-checkpoints"), "flink"), "spec": spec}


def _flink_volume(p: PipelineSpec) -> tuple[list[Manifest], list[Manifest]]:
    """(volumes, volumeMounts) of a Flink pod: the checkpoint claim at FLINK_DATA, if there is one."""
    if not uses_checkpoint_volume(p):
        return [], []
    return ([{"name": FLINK_DATA_VOLUME, "persistentVolumeClaim": {"claimName": child_name(p, "flink-checkpoints")}}],
            [{"name": FLINK_DATA_VOLUME, "mountPath": FLINK_DATA}])


def _flink_conf(p: PipelineSpec, high_availability: bool) -> dict[str, str]:
    f = p.flink
    conf = {
        "taskmanager.numberOfTaskSlots": str(f.tm_slots),
        "parallelism.default": str(f.parallelism),
        "execution.checkpointing.interval": f"{f.checkpoint_interval_seconds}s",
        "execution.checkpointing.mode": f.checkpoint_mode,
        "execution.checkpointing.dir": checkpoint_dir(p),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "python.executable": f.python_executable,
        "python.client.executable": f.python_executable,
    }
    savepoints = savepoint_dir(p)
    if savepoints:
        conf["execution.checkpointing.savepoint-dir"] = savepoints
    if high_availability:  # the Flink operator's last-state upgrades (and JobManager restarts) recover through HA
        conf["high-availability.type"] = "kubernetes"
        conf["high-availability.storageDir"] = ha_dir(p)
    conf.update(dict(f.configuration))
    return conf


def stream_job_env(p: PipelineSpec, flink_operator: bool) -> dict[str, str]:
    """services/stream_job/stream_job/config.py settings.

    Deployments mode: the job itself restores from the newest checkpoint in its checkpoint directory on every start
    (IOTPIPE_RESTORE=latest). FlinkDeployment mode: the Flink operator restores (HA metadata / savepoints), so the
    job must not pick a checkpoint of its own.
    """
    return {
        **shared_env(p),
        "IOTPIPE_SITE_ZONES": p.site_zones_text,
        "IOTPIPE_FLINK_PARALLELISM": str(p.flink.parallelism),
        "IOTPIPE_LATENESS_S": str(p.flink.allowed_lateness_minutes * 60),
        "IOTPIPE_CHECKPOINT_INTERVAL_MS": str(p.flink.checkpoint_interval_seconds * 1000),
        "IOTPIPE_CHECKPOINT_DIR": checkpoint_dir(p),
        "IOTPIPE_RESTORE": "none" if flink_operator else "latest",
    }


def python_driver_args(p: PipelineSpec) -> list[str]:
    """Arguments of Flink's PythonDriver: which Python runs the client, which module is the job."""
    return ["-pyclientexec", p.flink.python_executable, "-pym", p.flink.py_module]


def flink_deployment(p: PipelineSpec) -> Manifest:
    """A FlinkDeployment for the Flink Kubernetes Operator (PythonDriver in application mode).

    What the operator's validator asks for: a checkpoint directory for last-state/savepoint upgrades, Kubernetes HA
    for last-state, a savepoint directory for savepoint upgrades. The pod template passes Pod Security "restricted".
    """
    f = p.flink
    volumes, mounts = _flink_volume(p)
    main: Manifest = {"name": "flink-main-container", "env": env_vars(stream_job_env(p, flink_operator=True)),
                      "securityContext": CONTAINER_SECURITY}
    if mounts:
        main["volumeMounts"] = mounts
    pod_spec: Manifest = {"securityContext": FLINK_POD_SECURITY, "containers": [main]}
    if volumes:
        pod_spec["volumes"] = volumes
    return {
        "apiVersion": FLINK_DEPLOYMENT_API,
        "kind": "FlinkDeployment",
        "metadata": child_meta(p, child_name(p, "flink"), "flink"),
        "spec": {
            "image": f.image,
            "flinkVersion": f.flink_version,
            "flinkConfiguration": _flink_conf(p, high_availability=True),
            "serviceAccount": "flink",
            "restartNonce": f.restart_nonce,
            "jobManager": {"resource": {"cpu": f.jm_cpu, "memory": f.jm_memory}},
            "taskManager": {"replicas": f.tm_replicas, "resource": {"cpu": f.tm_cpu, "memory": f.tm_memory}},
            "podTemplate": {"metadata": {"labels": labels(p, "flink")}, "spec": pod_spec},
            "job": {
                "jarURI": f.jar_uri,
                "entryClass": "org.apache.flink.client.python.PythonDriver",
                "args": python_driver_args(p),
                "parallelism": f.parallelism,
                "upgradeMode": f.upgrade_mode,
                "state": "suspended" if p.suspend else "running",
            },
        },
    }


def _flink_properties(p: PipelineSpec) -> str:
    conf = {"jobmanager.rpc.address": child_name(p, "flink-jobmanager"), **_flink_conf(p, high_availability=False),
            "jobmanager.memory.process.size": p.flink.jm_memory, "taskmanager.memory.process.size": p.flink.tm_memory}
    return "\n".join(f"{k}: {v}" for k, v in conf.items())


def _flink_pod_extra(p: PipelineSpec) -> Manifest:
    volumes, _ = _flink_volume(p)
    return {"securityContext": FLINK_POD_SECURITY, **({"volumes": volumes} if volumes else {})}


def _flink_container_extra(p: PipelineSpec) -> Manifest:
    _, mounts = _flink_volume(p)
    return {"volumeMounts": mounts} if mounts else {}


def flink_jobmanager(p: PipelineSpec) -> Manifest:
    """Standalone application mode without the Flink operator: the JobManager runs the job (`standalone-job`)."""
    env = env_vars({**stream_job_env(p, flink_operator=False), "FLINK_PROPERTIES": _flink_properties(p)})
    container = make_container(
        "jobmanager", p.flink.image, env, Resources(f"{p.flink.jm_cpu:g}", None),
        command=[FLINK_ENTRYPOINT],  # the Flink image's launcher, whatever the image's own ENTRYPOINT is
        args=["standalone-job", "--job-classname", "org.apache.flink.client.python.PythonDriver",
              *python_driver_args(p)],
        ports=[{"name": "rpc", "containerPort": 6123}, {"name": "blob", "containerPort": 6124},
               {"name": "rest", "containerPort": 8081}],
        # The JVM can take minutes to listen on a busy node: liveness starts once the start-up probe passed.
        startupProbe={"tcpSocket": {"port": 6123}, "periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 120},
        livenessProbe={"tcpSocket": {"port": 6123}, "periodSeconds": 15, "timeoutSeconds": 10, "failureThreshold": 6},
        **_flink_container_extra(p),
    )
    return make_workload(p, "Deployment", "flink-jobmanager", 0 if p.suspend else 1, [container],
                     pod_annotations={"iotpipe.dev/restart-nonce": str(p.flink.restart_nonce)},
                     pod_extra=_flink_pod_extra(p), strategy={"type": "Recreate"})


def flink_taskmanager(p: PipelineSpec) -> Manifest:
    env = env_vars({**stream_job_env(p, flink_operator=False), "FLINK_PROPERTIES": _flink_properties(p)})
    container = make_container("taskmanager", p.flink.image, env, Resources(f"{p.flink.tm_cpu:g}", None),
                           command=[FLINK_ENTRYPOINT], args=["taskmanager"],
                           ports=[{"name": "data", "containerPort": 6121}], **_flink_container_extra(p))
    # Recreate, like the JobManager: a changed spec restarts the job anyway, and an old TaskManager that outlives the
    # old JobManager must not register with the new one (nor its old tasks overlap the restored job's sinks).
    return make_workload(p, "Deployment", "flink-taskmanager", 0 if p.suspend else p.flink.tm_replicas, [container],
                     pod_annotations={"iotpipe.dev/restart-nonce": str(p.flink.restart_nonce)},
                     pod_extra=_flink_pod_extra(p), strategy={"type": "Recreate"})


def flink_jobmanager_service(p: PipelineSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_meta(p, child_name(p, "flink-jobmanager"), "flink-jobmanager"),
        "spec": {"type": "ClusterIP", "selector": selector(p, "flink-jobmanager"),
                 "ports": [{"name": "rpc", "port": 6123}, {"name": "blob", "port": 6124},
                           {"name": "rest", "port": 8081}]},
    }
