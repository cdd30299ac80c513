"""Import Lago objects as `.bill` files: the use case behind `gpubill import lago`.

The shell hands it the JSON files' texts (path -> text) and the output
directory; it answers the generated files and the diagnostics
(`gpubill.lago.importer.import_lago`). Pure: the caller reads and writes the
files. Loads the language and the importer only (no numba, no store).
"""

from __future__ import annotations

from gpubill.lago.importer import ImportResult, import_lago

__all__ = ["ImportResult", "import_lago"]
