"""Helpers of bench/bench_e2e.py: the whole pipeline on the local stack under stepped open-loop load.

schedule (pure): which reading is sent when; stats (pure): percentiles, sustained steps, saturation point;
load: the paced producer (own process) and the raw Kafka baseline; pipeline: the stack and its processes;
observe: offsets, lag, sync metrics, CPU/RSS, HBase probes; clients: websocket clients; report: table, plots, doc.
"""
