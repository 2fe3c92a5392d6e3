"""The iotpipe operator: reconciles IoTPipeline custom resources (kopf; run `kopf run -m iot_operator.handlers`).

Layout: pure logic (``spec`` with ``rawspec`` and ``workloads``, ``builders``, ``dashboard``, ``status``,
``topics.plan``, ``tables.plan``) is separate from the I/O edges (``kube``, ``topics``, ``tables``) and from the thin
kopf ``handlers``.
"""

GROUP = "iotpipe.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "IoTPipeline"
PLURAL = "iotpipelines"
FIELD_MANAGER = "iotpipe-operator"
FINALIZER = f"{GROUP}/cleanup"
