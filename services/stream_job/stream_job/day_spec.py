"""The Java day operator's configuration as text (``dev.iotpipe.flink.DaySpec`` parses it). Pure: no PyFlink.

Python stays the one definition of the sensor catalogue (``iotcommon.sensors``) and the site zones
(``iotcommon.zones``); the Java day logic gets them from here when the job is built.
"""

from __future__ import annotations

from iotcommon.sensors import REST_PARTS, SENSORS
from iotcommon.zones import SiteZones


def sensors_text() -> str:
    """``"TH1=C:mean;...;Etot=Wh:cumulative;..."``, in catalogue order."""
    return ";".join(f"{name}={sensor.unit}:{sensor.rule.value}" for name, sensor in SENSORS.items())


def parts_text() -> str:
    """``"Etot=HVAC1+HVAC2+MiAC1+MiAC2;Wtot=W1"``: the parts of each cumulative total (AggDayRest)."""
    return ";".join(f"{total}={'+'.join(parts)}" for total, parts in REST_PARTS.items())


def zones_text(zones: SiteZones) -> str:
    """``"Europe/Athens"`` or ``"Europe/Athens;site-a=UTC,site-b=America/New_York"``: the default, then overrides."""
    overrides = ",".join(f"{site}={name}" for site, name in sorted(zones.overrides.items()))
    return zones.default + (";" + overrides if overrides else "")
