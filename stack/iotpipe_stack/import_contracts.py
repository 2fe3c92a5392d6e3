"""An import-linter contract type the built-in ones lack: "these packages import only the standard library".

Used by ``[tool.importlinter]`` in pyproject.toml (``contract_types``), checked by ``lint-imports`` (``make lint``):

    [[tool.importlinter.contracts]]
    type = "stdlib_only"
    source_modules = ["iotcommon"]
    allowed_imports = ["iotcommon.wire -> fastjsonschema"]

Every module of ``source_modules`` (and of their subpackages) may import the standard library
(``sys.stdlib_module_names``) and its own top-level package; anything else is a violation unless ``allowed_imports``
lists that importer and the imported package. The import graph must be built with ``include_external_packages = true``.
"""

from __future__ import annotations

import sys
from typing import Any

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


class StdlibOnlyContract(Contract):
    type_name = "stdlib_only"

    source_modules = fields.ListField(subfield=fields.StringField())
    allowed_imports = fields.SetField(subfield=fields.StringField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        allowed = {tuple(part.strip() for part in rule.split("->")) for rule in self._strings(self.allowed_imports)}
        illegal: list[dict[str, Any]] = []
        for package in self._strings(self.source_modules):
            for importer in sorted({package} | graph.find_descendants(package)):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    top = imported.split(".")[0]
                    if top in sys.stdlib_module_names or top == package.split(".")[0] or (importer, top) in allowed:
                        continue
                    details = graph.get_import_details(importer=importer, imported=imported)
                    illegal.append({"importer": importer, "imported": imported,
                                    "lines": sorted(d["line_number"] for d in details)})
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for item in check.metadata["illegal"]:
            lines = ", ".join(map(str, item["lines"]))
            output.print_error(f"{item['importer']} imports {item['imported']} (l.{lines}), not the standard library",
                               bold=False)
            output.new_line()

    @staticmethod
    def _strings(value: object) -> list[str]:
        return [str(v) for v in value] if isinstance(value, list | set) else []
