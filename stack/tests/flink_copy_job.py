"""Smoke job for the PyFlink runtime (run with the .venv-flink python, not collected by pytest).

Reads every record of --source (earliest -> the latest offsets at start: a bounded KafkaSource), upper-cases the value,
writes it to --sink with a KafkaSink, and returns when the bounded input is exhausted.
"""

from __future__ import annotations

import argparse
import sys

from pyflink.common import Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--sink", required=True)
    p.add_argument("--jar", required=True, help="file:// URL of flink-sql-connector-kafka")
    a = p.parse_args(argv)

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.add_jars(a.jar)
    env.set_python_executable(sys.executable)

    source = (
        KafkaSource.builder()
        .set_bootstrap_servers(a.bootstrap)
        .set_topics(a.source)
        .set_group_id(f"smoke-{a.source}")
        .set_starting_offsets(KafkaOffsetsInitializer.earliest())
        .set_bounded(KafkaOffsetsInitializer.latest())
        .set_value_only_deserializer(SimpleStringSchema())
        .build()
    )
    sink = (
        KafkaSink.builder()
        .set_bootstrap_servers(a.bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(a.sink)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .build()
    )
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "kafka-source")
    stream.map(lambda v: v.upper(), output_type=Types.STRING()).sink_to(sink)
    env.execute("iotpipe-smoke-copy")
    print("job finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
