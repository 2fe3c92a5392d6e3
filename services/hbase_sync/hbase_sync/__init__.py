"""Kafka -> HBase sync worker: the stream job's output topics into the pipeline's HBase tables, exactly once per row."""
