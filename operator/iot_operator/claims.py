"""Which pipeline owns a topic prefix or a table prefix. Pure.

Topics and tables are named by prefix only, so two IoTPipelines that give the same prefix would write into, and with a
Delete policy drop, the same data. The older pipeline keeps the prefix (creationTimestamp; within the same second the
one already reconciled without a conflict; then uid); a younger one gets ``Conflict`` and touches nothing. A pipeline
being deleted still holds its claim until it is gone, and a cleanup never drops data whose prefix another pipeline
also names, whatever its age.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from iot_operator.config import OperatorConfig
from iot_operator.spec import InvalidSpec, PipelineSpec, parse


def rank(body: Mapping[str, Any]) -> tuple[str, int, str]:
    """Lower is older: creationTimestamp (whole seconds), then holding the prefixes already, then uid."""
    meta = body.get("metadata") or {}
    conditions = (body.get("status") or {}).get("conditions") or []
    holds = any(c.get("type") == "Conflict" and c.get("status") == "False" for c in conditions)
    return str(meta.get("creationTimestamp") or ""), 0 if holds else 1, str(meta.get("uid") or "")


def _others(p: PipelineSpec, bodies: Iterable[Mapping[str, Any]],
            cfg: OperatorConfig) -> list[tuple[PipelineSpec, Mapping[str, Any]]]:
    out = []
    for body in bodies:
        if str((body.get("metadata") or {}).get("uid", "")) == p.uid:
            continue
        try:
            out.append((parse(body, cfg), body))
        except InvalidSpec:
            continue  # an invalid pipeline never created anything
    return out


def shared(p: PipelineSpec, other: PipelineSpec) -> list[str]:
    """What of ``p``'s data ``other`` names too: 'topic prefix X', 'table prefix Y'."""
    out = []
    if other.kafka.topic_prefix == p.kafka.topic_prefix:
        out.append(f"topic prefix {p.kafka.topic_prefix}")
    if other.hbase.table_prefix == p.hbase.table_prefix:
        out.append(f"table prefix {p.hbase.table_prefix}")
    return out


def conflict(p: PipelineSpec, body: Mapping[str, Any], bodies: Iterable[Mapping[str, Any]],
             cfg: OperatorConfig) -> str | None:
    """Why ``p`` (read from ``body``) may not use its prefixes (an older pipeline claims one), or None."""
    mine = rank(body)
    for other, other_body in sorted(_others(p, bodies, cfg), key=lambda o: rank(o[1])):
        what = shared(p, other)
        if what and rank(other_body) < mine:
            return (f"{' and '.join(what)} already used by IoTPipeline {other.namespace}/{other.name}: choose "
                    f"another kafka.topicPrefix / hbase.tablePrefix")
    return None


def kept_by_others(p: PipelineSpec, bodies: Iterable[Mapping[str, Any]], cfg: OperatorConfig) -> dict[str, str]:
    """On deletion: {'topics'|'tables': the other pipeline} whose data must stay because another pipeline names it."""
    out: dict[str, str] = {}
    for other, _ in _others(p, bodies, cfg):
        who = f"{other.namespace}/{other.name}"
        if other.kafka.topic_prefix == p.kafka.topic_prefix:
            out.setdefault("topics", who)
        if other.hbase.table_prefix == p.hbase.table_prefix:
            out.setdefault("tables", who)
    return out
