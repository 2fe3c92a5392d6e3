"""Run by test_job_fast_path.py with the PyFlink venv's python: feeds messages through the job's Java functions
(reading_field, reading_time) in a real local Flink (batch SQL queries on one TableEnvironment).

Protocol: one JSON request per stdin line, ``{"limits": "<Limits.wire>", "messages": ["<base64>", ...]}``; one JSON
line per request on stdout: a list with one object per message (the fields, the event time; all None when the fast
path leaves the message to the slow path). Ends at EOF.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from typing import Any

from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment

from iotcommon.limits import Limits
from stream_job import sql
from stream_job.udf_jar import FUNCTIONS, find_udf_jar


def environment() -> TableEnvironment:
    jar = find_udf_jar("", os.environ)
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.get_config().set("parallelism.default", "1")
    t_env.get_config().set("table.local-time-zone", "UTC")
    if jar is not None:
        t_env.get_config().set("pipeline.jars", jar.absolute().as_uri())
    for name, java_class in FUNCTIONS.items():
        t_env.create_java_temporary_system_function(name, java_class)
    return t_env


def verdicts(t_env: TableEnvironment, limits: Limits, messages: list[bytes], round_no: int) -> list[dict[str, Any]]:
    rows = [(i, bytearray(m)) for i, m in enumerate(messages)]  # PyFlink takes VARBINARY as bytearray
    view = f"msgs{round_no}"
    t_env.create_temporary_view(view, t_env.from_elements(rows, DataTypes.ROW([
        DataTypes.FIELD("i", DataTypes.INT()), DataTypes.FIELD("v", DataTypes.BYTES())])))
    args = sql.grammar(limits)
    fields = ", ".join(f"reading_field(v, {args}, '{name}') AS f_{name}"
                       for name in ("site", "sensor", "ts", "value", "seq"))
    query = f"SELECT i, {fields}, CAST(reading_time(v, {args}) AS STRING) AS t FROM {view}"  # noqa: S608
    with t_env.execute_sql(query).collect() as results:
        out = {row[0]: {"site": row[1], "sensor": row[2], "ts": row[3], "value": row[4], "seq": row[5],
                        "time": row[6]} for row in results}
    t_env.drop_temporary_view(view)
    return [out[i] for i in range(len(messages))]


def main() -> None:
    t_env = environment()
    for round_no, line in enumerate(sys.stdin):
        request = json.loads(line)
        messages = [base64.b64decode(m) for m in request["messages"]]
        result = verdicts(t_env, Limits.from_wire(request["limits"]), messages, round_no)
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
