"""Unit tests: where the job finds its Java functions' jar (no build here: test_job_fast_path.py builds and runs it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotcommon.errors import ConfigError
from stream_job import udf_jar


def test_a_configured_jar_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="IOTPIPE_FLINK_UDF_JAR"):
        udf_jar.find_udf_jar(str(tmp_path / "missing.jar"), {})
    jar = tmp_path / "mine.jar"
    jar.write_bytes(b"PK")
    assert udf_jar.find_udf_jar(str(jar), {}) == jar


def test_a_jar_in_flink_lib_is_already_on_the_classpath(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / udf_jar.JAR_NAME).write_bytes(b"PK")
    assert udf_jar.find_udf_jar("", {"FLINK_HOME": str(tmp_path)}) is None


def test_a_cached_jar_for_these_sources_is_reused(tmp_path: Path) -> None:
    cached = tmp_path / "jars" / f"iotpipe-stream-udf-{udf_jar.sources_hash()}.jar"
    cached.parent.mkdir()
    cached.write_bytes(b"PK")
    assert udf_jar.find_udf_jar("", {"IOTPIPE_CACHE": str(tmp_path)}) == cached


def test_the_cache_key_follows_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "A.java").write_text("class A {}", encoding="utf-8")
    monkeypatch.setattr(udf_jar, "SOURCES", tmp_path)
    before = udf_jar.sources_hash()
    (tmp_path / "A.java").write_text("class A { int x; }", encoding="utf-8")
    assert udf_jar.sources_hash() != before


def test_every_registered_function_has_its_source() -> None:
    for java_class in udf_jar.FUNCTIONS.values():
        assert (udf_jar.SOURCES / (java_class.replace(".", "/") + ".java")).is_file(), java_class
