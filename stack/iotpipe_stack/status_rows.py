"""The rows of `iotpipe local status`: one per process, and how they print (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # ready | not ready | stopped | missing
    pid: int | None
    where: str
    rss_bytes: int
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "ready"


def format_status(rows: Iterable[ComponentStatus]) -> str:
    lines = [f"{'component':<12} {'state':<10} {'pid':>7} {'rss':>9}  where"]
    for r in rows:
        rss = f"{r.rss_bytes / 2**20:.0f} MiB" if r.rss_bytes else "-"
        pid = str(r.pid) if r.pid else "-"
        detail = f"  [{r.detail}]" if r.detail else ""
        lines.append(f"{r.name:<12} {r.state:<10} {pid:>7} {rss:>9}  {r.where}{detail}")
    return "\n".join(lines)


def status_json(rows: Iterable[ComponentStatus]) -> list[Mapping[str, object]]:
    return [asdict(r) | {"ready": r.ready} for r in rows]
