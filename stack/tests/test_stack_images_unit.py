"""`make images` without a container engine: what is built from what, the inputs digest, the CLI's options.

The container side (every image built and run under podman) is tests/test_images_containers.py (marker `images`).
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from iotcommon.errors import StackError
from iotpipe_stack import image_specs as specs
from iotpipe_stack import podman
from iotpipe_stack.image_inputs import site_certificates
from iotpipe_stack.images import chart_app_version, main
from iotpipe_stack.podman import podman_ulimits

REPO_ROOT = Path(__file__).resolve().parents[2]

PYTHON_TWO_STAGE = """\
# syntax=docker/dockerfile:1
ARG NODE_IMAGE=node:20-bookworm-slim
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
FROM ${NODE_IMAGE} AS uplot
COPY services/ws_bridge/fetch-uplot.sh .
FROM ${PYTHON_IMAGE} AS build
COPY requirements/dev.txt constraints.txt
FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
COPY --chown=1000:1000 libs/iotcommon/iotcommon \\
     /app/iotcommon
ADD https://example.org/x.jar /x.jar
COPY ["images/kafka/log4j2.properties", "/opt/kafka/"]
"""


def test_base_args_are_the_declared_image_arguments_in_order() -> None:
    assert specs.base_args(PYTHON_TWO_STAGE) == ["NODE_IMAGE", "PYTHON_IMAGE"]


def test_an_unknown_base_argument_is_refused() -> None:
    with pytest.raises(ValueError, match="RUST_IMAGE"):
        specs.base_args("ARG RUST_IMAGE=rust:1.80\nFROM ${RUST_IMAGE}\n")


def test_copy_sources_skip_stages_and_urls_and_join_continuations() -> None:
    assert specs.copy_sources(PYTHON_TWO_STAGE) == [
        "services/ws_bridge/fetch-uplot.sh",
        "requirements/dev.txt",
        "libs/iotcommon/iotcommon",
        "images/kafka/log4j2.properties",
    ]


def test_build_args_point_each_argument_at_its_stand_in() -> None:
    refs = {"python": "localhost/b/python:1", "node": "localhost/b/node:1"}
    assert specs.build_args(PYTHON_TWO_STAGE, refs) == {
        "NODE_IMAGE": "localhost/b/node:1",
        "PYTHON_IMAGE": "localhost/b/python:1",
    }


def test_needed_bases_include_parents_in_build_order() -> None:
    flink_only = "ARG FLINK_IMAGE=flink:2.2.1-scala_2.12-java17\nFROM ${FLINK_IMAGE}\n"
    assert specs.needed_bases([flink_only]) == ["jre", "flink"]
    assert specs.needed_bases([PYTHON_TWO_STAGE, flink_only]) == ["jre", "flink", "python", "node"]
    assert specs.needed_bases([]) == []


def test_every_parent_is_built_before_its_children() -> None:
    seen = {"debian"}
    for base in specs.BASES:
        assert base.parent in seen, base
        seen.add(base.name)


def test_inputs_digest_depends_on_content_not_order() -> None:
    a = specs.inputs_digest([("Dockerfile", b"FROM x"), ("app.py", b"print(1)")])
    assert a == specs.inputs_digest([("app.py", b"print(1)"), ("Dockerfile", b"FROM x")])
    assert a != specs.inputs_digest([("Dockerfile", b"FROM x"), ("app.py", b"print(2)")])
    assert a != specs.inputs_digest([("Dockerfile", b"FROM x"), ("app2.py", b"print(1)")])


def test_caches_and_tests_are_not_inputs() -> None:
    assert specs.ignored_by_default("services/ws_bridge/ws_bridge/__pycache__/app.cpython-311.pyc")
    assert specs.ignored_by_default("services/ws_bridge/tests/test_x.py")
    assert not specs.ignored_by_default("services/ws_bridge/ws_bridge/app.py")


def test_select_keeps_build_order_and_refuses_unknown_names() -> None:
    assert [p.name for p in specs.select(["operator", "kafka"])] == ["kafka", "operator"]
    assert len(specs.select([])) == len(specs.PROJECT_IMAGES)
    with pytest.raises(ValueError, match="nope"):
        specs.select(["nope"])


@pytest.mark.parametrize("image", specs.PROJECT_IMAGES, ids=lambda p: p.name)
def test_every_project_dockerfile_takes_its_bases_from_known_arguments(image: specs.ProjectImage) -> None:
    text = (REPO_ROOT / image.dockerfile).read_text(encoding="utf-8")
    args = specs.base_args(text)
    assert args, f"{image.dockerfile}: no base-image build argument"
    for source in specs.copy_sources(text):
        assert list(REPO_ROOT.glob(source.rstrip("/"))), f"{image.dockerfile}: COPY {source}: no such path"


@pytest.mark.parametrize("base", specs.BASES, ids=lambda b: b.name)
def test_every_stand_in_has_a_containerfile_taking_its_parent(base: specs.BaseImage) -> None:
    text = (REPO_ROOT / base.containerfile).read_text(encoding="utf-8")
    assert f"ARG {base.parent_arg}=" in text
    assert f"FROM ${{{base.parent_arg}}}" in text


def test_project_images_are_tagged_with_the_charts_app_version() -> None:
    chart = (REPO_ROOT / "charts" / "iotpipe-platform" / "Chart.yaml").read_text(encoding="utf-8")
    assert f'appVersion: "{chart_app_version()}"' in chart
    assert specs.PROJECT_BY_NAME["kafka"].ref("0.1.0") == "localhost/iotpipe/kafka:0.1.0"


def test_podman_ulimits_are_explicit_and_within_the_hard_limits() -> None:
    flags = podman_ulimits()
    assert flags[0::2] == ["--ulimit", "--ulimit"]
    values = dict(f.split("=", 1) for f in flags[1::2])
    for name, res in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        soft, hard = (int(v) for v in values[name].split(":"))
        limit = resource.getrlimit(res)[1]
        assert soft == hard
        assert limit == resource.RLIM_INFINITY or hard <= limit


def test_list_prints_every_image_and_stand_in(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"], {}) == 0
    out = capsys.readouterr().out
    for p in specs.PROJECT_IMAGES:
        assert f"localhost/iotpipe/{p.name}:{chart_app_version()}\timage\t{p.dockerfile}" in out
    for b in specs.BASES:
        assert b.ref in out


def test_bad_options_exit_2() -> None:
    assert main(["--only", "nope"], {}) == 2
    proc = subprocess.run([sys.executable, "-m", "iotpipe_stack.images", "--no-such-flag"], capture_output=True,
                          text=True, check=False, timeout=120)  # fmt: skip
    assert proc.returncode == 2


def test_help_names_the_env_vars() -> None:
    proc = subprocess.run([sys.executable, "-m", "iotpipe_stack.images", "--help"], capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip
    assert proc.returncode == 0
    for env in ("CONTAINERD_ADDRESS", "IOTPIPE_CACHE", "IOTPIPE_IMAGES_ONLY", "IOTPIPE_IMAGE_TAG"):
        assert env in proc.stdout


def test_site_certificates_are_the_crt_files_of_the_ca_dir(tmp_path: Path) -> None:
    (tmp_path / "proxy.crt").write_text("x", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    assert site_certificates(tmp_path) == [tmp_path / "proxy.crt"]
    assert site_certificates(tmp_path / "missing") == []


@pytest.mark.parametrize("containerfile", sorted((REPO_ROOT / "images" / "base").glob("*/Containerfile")),
                         ids=lambda p: p.parent.name)  # fmt: skip
def test_stand_in_containerfiles_pass_hadolint(containerfile: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    res = subprocess.run([str(hadolint), "--config", str(REPO_ROOT / ".hadolint.yaml"), str(containerfile)],
                         capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


def test_build_graph_orders_stand_ins_before_the_images_on_them() -> None:
    flink = "ARG MAVEN_IMAGE=maven:3.9.11-eclipse-temurin-17\nARG FLINK_IMAGE=flink:2.2.1-scala_2.12-java17\n"
    graph = specs.build_graph({"bridge": PYTHON_TWO_STAGE, "job": flink})
    assert list(graph)[:5] == ["base:jre", "base:maven", "base:flink", "base:python", "base:node"]
    assert graph == {
        "base:python": set(),
        "base:jre": set(),
        "base:maven": set(),
        "base:node": set(),
        "base:flink": {"base:jre"},
        "image:bridge": {"base:node", "base:python"},
        "image:job": {"base:maven", "base:flink"},
    }


def test_ready_steps_wait_for_every_dependency() -> None:
    graph = {"base:jre": set(), "base:flink": {"base:jre"}, "image:job": {"base:flink", "base:jre"}}
    assert specs.ready_steps(graph, done=set(), started=set()) == ["base:jre"]
    assert specs.ready_steps(graph, done=set(), started={"base:jre"}) == []
    assert specs.ready_steps(graph, done={"base:jre"}, started={"base:jre"}) == ["base:flink"]
    assert specs.ready_steps(graph, done={"base:jre", "base:flink"}, started={"base:jre", "base:flink"}) == [
        "image:job"
    ]


def test_apt_mirror_reads_deb822_and_one_line_sources() -> None:
    deb822 = ("Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
              "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"
              "Suites: bookworm-security\n")
    assert specs.apt_mirror([deb822], "bookworm") == "http://mirror.example/debian"
    assert specs.apt_mirror([deb822], "bookworm-security") == "http://mirror.example/debian-security"
    one_line = ("# deb http://old.example/debian bookworm main\n"
                "deb [arch=amd64] http://one.example/debian bookworm main\n")
    assert specs.apt_mirror([one_line], "bookworm") == "http://one.example/debian"
    disabled = "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n"
    assert specs.apt_mirror([disabled, one_line], "bookworm") == "http://one.example/debian"
    assert specs.apt_mirror(["Types: deb-src\nURIs: http://src.example/\nSuites: bookworm\n"], "bookworm") is None



def test_a_failed_ctr_import_is_tried_once_more(tmp_path: Path) -> None:
    # a stand-in for ctr (this test says so): fails its first import, as containerd did once in CI, then succeeds
    marker = tmp_path / "failed-once"
    fake_ctr = ["sh", "-c", f'[ -e {marker} ] && exit 0; touch {marker}; echo "parent snapshot does not exist"; exit 1',
                "ctr"]
    said: list[str] = []
    podman._import(fake_ctr, tmp_path / "image.tar", "localhost/x:1", said.append)
    assert marker.exists() and len(said) == 1 and "parent snapshot does not exist" in said[0]


def test_a_ctr_import_that_fails_twice_raises(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="ctr import localhost/x:1"):
        podman._import(["sh", "-c", "exit 1", "ctr"], tmp_path / "image.tar", "localhost/x:1", lambda _m: None)
