"""The `stdlib_only` import-linter contract (iotpipe_stack.import_contracts): what it lets through and what it reports.
A unit test on a hand-built import graph; the repository's own contracts run in tests/test_lint.py."""

from __future__ import annotations

import grimp

from iotpipe_stack.import_contracts import StdlibOnlyContract


def graph() -> grimp.ImportGraph:
    g = grimp.ImportGraph()
    for module in ("lib", "lib.a", "lib.b", "other"):
        g.add_module(module)
    for external in ("json", "requests", "fastjsonschema"):
        g.add_module(external, is_squashed=True)
    for line, (importer, imported) in enumerate([("lib.a", "json"), ("lib.a", "lib.b"), ("lib.b", "fastjsonschema"),
                                                 ("lib.a", "requests"), ("lib.b", "other")], start=1):
        g.add_import(importer=importer, imported=imported, line_number=line, line_contents=f"import {imported}")
    return g


def check(allowed: list[str]) -> list[tuple[str, str, list[int]]]:
    contract = StdlibOnlyContract(name="lib is stdlib only", session_options={},
                                  contract_options={"source_modules": ["lib"], "allowed_imports": allowed})
    result = contract.check(graph(), verbose=False)
    illegal = [(i["importer"], i["imported"], i["lines"]) for i in result.metadata["illegal"]]
    assert result.kept == (not illegal)
    return illegal


def test_only_the_standard_library_and_the_package_itself_pass() -> None:
    assert check([]) == [("lib.a", "requests", [4]), ("lib.b", "fastjsonschema", [3]), ("lib.b", "other", [5])]


def test_an_allowed_import_passes_only_from_its_importer() -> None:
    assert check(["lib.b -> fastjsonschema", "lib.b -> requests"]) == [("lib.a", "requests", [4]),
                                                                       ("lib.b", "other", [5])]
