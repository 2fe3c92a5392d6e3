"""The iotpipe operator: reconciles IoTPipeline custom resources (kopf; run `kopf run -m iot_operator.handlers`).

Layout: pure logic (``spec`` with ``rawspec`` and ``workloads``; ``builders`` with ``manifests`` and
``flinkbuilders``; ``claims``, ``dashboard``, ``flinkstate``, ``status``, ``topics.plan``, ``tables.plan``) is separate
from the I/O edges (``kube``, ``topics``, ``tables``, seen by ``reconcile`` and ``cleanup`` as the Protocols of
``deps``) and from the thin kopf ``handlers``, which keep an ``state.OperatorState`` in kopf's memo.
"""

GROUP = "iotpipe.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "IoTPipeline"
PLURAL = "iotpipelines"
FIELD_MANAGER = "iotpipe-operator"
FINALIZER = f"{GROUP}/cleanup"
