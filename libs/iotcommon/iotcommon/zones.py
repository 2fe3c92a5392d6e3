"""Which time zone a site lives in: one default zone plus per-site overrides.

The stream job computes a site's local day in that site's zone, the simulators stamp each site's days in it, and the
bridge tells clients each site's zone. All of them read the same two settings:

- ``IOTPIPE_SITE_TZ``: the default zone (``iotcommon.days.DEFAULT_TZ`` unless set);
- ``IOTPIPE_SITE_ZONES``: overrides, ``site=Area/City`` pairs separated by commas, e.g.
  ``"plant-ny=America/New_York,plant-in=Asia/Kolkata"`` (empty: every site in the default zone).

On Kubernetes the map comes from the ``IoTPipeline`` field ``spec.siteZones``, rendered into ``IOTPIPE_SITE_ZONES``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iotcommon.days import DEFAULT_TZ
from iotcommon.errors import ConfigError
from iotcommon.messages import SITE_PATTERN


def load_zone(name: str, where: str = "time zone") -> ZoneInfo:
    """A zone by IANA name; ConfigError (with the name) when it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{where}: unknown time zone {name!r} (use an IANA name such as Europe/Athens)") from exc


def parse_site_zones(text: str) -> dict[str, str]:
    """``"a=Europe/Athens, b=UTC"`` -> ``{"a": "Europe/Athens", "b": "UTC"}``; ConfigError says what is wrong."""
    out: dict[str, str] = {}
    for raw in text.split(","):
        pair = raw.strip()
        if not pair:
            continue
        site, sep, name = (p.strip() for p in pair.partition("="))
        if not sep or not site or not name:
            raise ConfigError(f"IOTPIPE_SITE_ZONES: {pair!r} is not site=Area/City")
        if not SITE_PATTERN.fullmatch(site):
            raise ConfigError(f"IOTPIPE_SITE_ZONES: {site!r} is not a valid site id")
        if site in out:
            raise ConfigError(f"IOTPIPE_SITE_ZONES: site {site!r} is given twice")
        load_zone(name, f"IOTPIPE_SITE_ZONES[{site}]")
        out[site] = name
    return out


def format_site_zones(zones: Mapping[str, str]) -> str:
    """The inverse of ``parse_site_zones`` (sorted, so renderings are stable)."""
    return ",".join(f"{site}={zones[site]}" for site in sorted(zones))


@dataclass(frozen=True)
class SiteZones:
    """The zone of every site: ``overrides`` by site id, else ``default``."""

    default: str = DEFAULT_TZ
    overrides: Mapping[str, str] = field(default_factory=dict)
    _cache: dict[str, ZoneInfo] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_settings(cls, default: str, site_zones: str) -> SiteZones:
        """From the two settings' text (``IOTPIPE_SITE_TZ``, ``IOTPIPE_SITE_ZONES``); ConfigError when invalid."""
        load_zone(default, "IOTPIPE_SITE_TZ")
        return cls(default, parse_site_zones(site_zones))

    def name(self, site: str) -> str:
        """IANA name of the site's zone."""
        return self.overrides.get(site, self.default)

    def zone(self, site: str) -> ZoneInfo:
        """The site's zone (cached per name)."""
        name = self.name(site)
        tz = self._cache.get(name)
        if tz is None:
            tz = self._cache[name] = ZoneInfo(name)
        return tz

    def names(self) -> Iterator[str]:
        """Every zone name in use: the default first, then the overrides' distinct zones, sorted."""
        yield self.default
        yield from sorted(set(self.overrides.values()) - {self.default})
