"""Prometheus metrics of one bridge (own registry, so several apps can live in one test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("iotpipe_bridge_connections", "open websocket connections", registry=r)
        self.subscriptions = Gauge("iotpipe_bridge_subscriptions", "active subscriptions", registry=r)
        self.records_in = Counter("iotpipe_bridge_records_in", "records read from Kafka", ["stream"], registry=r)
        self.records_sent = Counter("iotpipe_bridge_records_sent", "records sent to websocket clients", registry=r)
        self.frames_sent = Counter("iotpipe_bridge_frames_sent", "websocket frames sent", registry=r)
        self.records_dropped = Counter("iotpipe_bridge_records_dropped",
                                       "records dropped by the per-client overflow policy", registry=r)
        self.bad_records = Counter("iotpipe_bridge_bad_records", "Kafka records that were not valid messages",
                                   ["stream"], registry=r)
        self.bad_client_messages = Counter("iotpipe_bridge_bad_client_messages", "client messages refused",
                                           ["code"], registry=r)
        self.slow_clients_closed = Counter("iotpipe_bridge_slow_clients_closed",
                                           "clients closed because they accepted nothing for send_timeout_s",
                                           registry=r)
        self.rejected_connections = Counter("iotpipe_bridge_rejected_connections", "connections refused",
                                            ["reason"], registry=r)
        self.queries = Counter("iotpipe_bridge_queries", "history queries (websocket and HTTP)", ["stream", "api"],
                               registry=r)
        self.refused_queries = Counter("iotpipe_bridge_refused_queries",
                                       "HTTP queries refused (malformed parameter, or the bound exceeded)",
                                       ["reason"], registry=r)
        self.history_errors = Counter("iotpipe_bridge_history_errors", "history queries that failed (HBase)",
                                      registry=r)
