"""Site -> zone map: parsing, errors that say what to fix, lookups."""

from __future__ import annotations

import pytest

from iotcommon.errors import ConfigError
from iotcommon.zones import SiteZones, format_site_zones, parse_site_zones


def test_parse_pairs_with_spaces_and_empty_items() -> None:
    assert parse_site_zones(" a=Europe/Athens, ,b-2=America/New_York ,") == {"a": "Europe/Athens",
                                                                              "b-2": "America/New_York"}
    assert parse_site_zones("") == {}


@pytest.mark.parametrize(("text", "fragment"), [
    ("a", "not site=Area/City"),
    ("=UTC", "not site=Area/City"),
    ("a=", "not site=Area/City"),
    ("a=Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ("bad site=UTC", "not a valid site id"),
    ("a=UTC,a=Europe/Athens", "given twice"),
])
def test_parse_errors_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_site_zones(text)


def test_lookup_uses_override_else_default() -> None:
    zones = SiteZones.from_settings("Europe/Athens", "ny=America/New_York")
    assert zones.name("ny") == "America/New_York"
    assert zones.name("other") == "Europe/Athens"
    assert zones.zone("ny").key == "America/New_York"
    assert list(zones.names()) == ["Europe/Athens", "America/New_York"]


def test_unknown_default_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="IOTPIPE_SITE_TZ"):
        SiteZones.from_settings("Nowhere/Land", "")


def test_format_round_trips_sorted() -> None:
    zones = {"b": "UTC", "a": "Asia/Kolkata"}
    assert format_site_zones(zones) == "a=Asia/Kolkata,b=UTC"
    assert parse_site_zones(format_site_zones(zones)) == zones
