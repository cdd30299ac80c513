"""Where a Lago value came from, and the diagnostics the import collects.

`At` is a position in one JSON file (file + JSON path); `Ctx` collects
diagnostics, each naming the JSON path in its message and pointing at the
value's line and column, so the text renderer shows the JSON line with a
caret. Rule ids:

* `lago-invalid-json`  the file is not JSON (one line: file:line:col)
* `lago-invalid`       a value has the wrong shape for Lago (a price that is not a decimal string, ...)
* `lago-unsupported`   a Lago feature the `.bill` language cannot express exactly
* `lago-missing`       an object refers to one that is not among the imported files
* `lago-duplicate`     two different objects with the same code
* `lago-ignored`       (warning) data that does not change amounts and is not imported
* `lago-generated`     the generated `.bill` text does not check (a bug in the importer)
* `lago-too-large`     a generated `.bill` file would be larger than a `.bill` file may be
"""

from __future__ import annotations

import attrs

from gpubill.dsl.diagnostics import Diagnostic, error, warning
from gpubill.lago.importer.jsonpos import Locator, render_path


@attrs.frozen
class At:
    loc: Locator
    path: tuple = ()

    def __truediv__(self, key) -> "At":
        return At(self.loc, self.path + (key,))

    def where(self) -> str:
        return render_path(self.path)


class Ctx:
    def __init__(self) -> None:
        self.diags: list[Diagnostic] = []

    def error(self, at: At, message: str, *hints: str, rule: str = "lago-unsupported") -> None:
        self.diags.append(error(rule, f"{at.where()}: {message}", at.loc.span(at.path), hints=hints))

    def invalid(self, at: At, message: str, *hints: str) -> None:
        self.error(at, message, *hints, rule="lago-invalid")

    def warn(self, at: At, message: str, *hints: str, rule: str = "lago-ignored") -> None:
        self.diags.append(warning(rule, f"{at.where()}: {message}", at.loc.span(at.path), hints=hints))

    @property
    def failed(self) -> bool:
        return any(d.is_error for d in self.diags)

    def errors_since(self, n: int) -> bool:
        return any(d.is_error for d in self.diags[n:])
