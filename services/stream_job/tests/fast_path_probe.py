"""Run by test_job_fast_path.py with the PyFlink venv's python: feeds messages (a JSON list of base64 strings on
stdin) through the job's Java functions in a local Flink batch query, prints one JSON object per message."""

from __future__ import annotations

import base64
import json
import os
import sys

from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment

from stream_job import sql
from stream_job.udf_jar import FUNCTIONS, find_udf_jar


def main() -> None:
    messages = [base64.b64decode(m) for m in json.load(sys.stdin)]
    jar = find_udf_jar("", os.environ)
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.get_config().set("parallelism.default", "1")
    t_env.get_config().set("table.local-time-zone", "UTC")
    if jar is not None:
        t_env.get_config().set("pipeline.jars", jar.absolute().as_uri())
    for name, java_class in FUNCTIONS.items():
        t_env.create_java_temporary_system_function(name, java_class)
    rows = [(i, bytearray(m)) for i, m in enumerate(messages)]  # PyFlink takes VARBINARY as bytearray
    t_env.create_temporary_view("msgs", t_env.from_elements(rows, DataTypes.ROW([
        DataTypes.FIELD("i", DataTypes.INT()), DataTypes.FIELD("v", DataTypes.BYTES())])))
    fields = ", ".join(f"reading_field(v, {sql.GRAMMAR}, '{name}') AS f_{name}"
                       for name in ("site", "sensor", "ts", "value", "seq"))
    query = (f"SELECT i, {fields}, CAST(reading_time(v, {sql.GRAMMAR}) AS STRING) AS t FROM msgs")  # noqa: S608
    with t_env.execute_sql(query).collect() as results:
        out = {row[0]: {"site": row[1], "sensor": row[2], "ts": row[3], "value": row[4], "seq": row[5],
                        "time": row[6]} for row in results}
    print(json.dumps([out[i] for i in range(len(messages))]))


if __name__ == "__main__":
    main()
