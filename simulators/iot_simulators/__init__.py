"""iotpipe device simulators: deterministic building sensors producing readings to Kafka."""
