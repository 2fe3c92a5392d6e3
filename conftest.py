"""Root conftest: the real-service fixtures (kafka_service, hbase_service, flink_runtime, unique_name, ...)."""

pytest_plugins = ["iotpipe_stack.testing", "iotpipe_stack.kube_testing", "iotpipe_stack.cluster_testing"]
