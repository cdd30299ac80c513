"""Link the blocks of many files into one catalog, by name.

`resolve(documents) -> (Catalog, diagnostics)`. The catalog is the unit that
the checker, the engine's compiler and `gpubill test` work on. Names are
global across the files of one billing repository; a plan may have several
versions (blocks with the same name and distinct `version` ids).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from gpubill.dsl import ast
from gpubill.dsl.diagnostics import Diagnostic, did_you_mean, error


@attrs.frozen
class Catalog:
    entities: dict[str, ast.Entity]
    metrics: dict[str, ast.Metric]
    plans: dict[str, tuple[ast.Plan, ...]]  # name -> versions, in source order
    contracts: dict[str, ast.Contract]
    tests: tuple[ast.TestBlock, ...]

    def plan_version(self, ref: ast.PlanRef) -> ast.Plan | None:
        """The pinned version, or the latest one when the contract pins none."""
        versions = self.plans.get(ref.name.name, ())
        if not versions:
            return None
        if ref.version is None:
            return max(versions, key=_version_order)
        for p in versions:
            if p.version is not None and p.version.id == ref.version:
                return p
        return None


def _version_order(p: ast.Plan):
    v = p.version
    if v is None:
        return (0, "")
    eff = v.effective_from.value if v.effective_from else None
    return (1, str(eff) if eff else "", v.id)


def resolve(documents: Iterable[ast.Document]) -> tuple[Catalog, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    entities: dict[str, ast.Entity] = {}
    metrics: dict[str, ast.Metric] = {}
    plans: dict[str, list[ast.Plan]] = {}
    contracts: dict[str, ast.Contract] = {}
    tests: list[ast.TestBlock] = []
    test_names: dict[str, ast.TestBlock] = {}

    def unique(table: dict, block, kind: str):
        name = block.name.name
        if name in table:
            diags.append(
                error(
                    "duplicate-name",
                    f'{kind} "{name}" is defined twice',
                    block.name.span,
                    hints=("rename one of them, or delete the copy",),
                    notes=((f"first {kind} \"{name}\"", table[name].name.span),),
                )
            )
            return
        table[name] = block

    for doc in documents:
        for b in doc.blocks:
            if isinstance(b, ast.Entity):
                unique(entities, b, "entity")
            elif isinstance(b, ast.Metric):
                unique(metrics, b, "metric")
            elif isinstance(b, ast.Contract):
                unique(contracts, b, "contract")
            elif isinstance(b, ast.TestBlock):
                if b.name.value in test_names:
                    diags.append(
                        error(
                            "duplicate-name",
                            f'test "{b.name.value}" is defined twice',
                            b.name.span,
                            hints=("give each test its own name",),
                            notes=(("first test", test_names[b.name.value].name.span),),
                        )
                    )
                test_names[b.name.value] = b
                tests.append(b)
            elif isinstance(b, ast.Plan):
                versions = plans.setdefault(b.name.name, [])
                for other in versions:
                    same = (other.version.id if other.version else None) == (b.version.id if b.version else None)
                    if same:
                        what = f'version {b.version.id} of plan "{b.name.name}"' if b.version else f'plan "{b.name.name}"'
                        diags.append(
                            error(
                                "duplicate-name",
                                f"{what} is defined twice",
                                b.name.span,
                                hints=('give each version its own id: plan NAME version N effective DATE { ... }',),
                                notes=(("first definition", other.name.span),),
                            )
                        )
                        break
                else:
                    versions.append(b)
    catalog = Catalog(entities, metrics, {k: tuple(v) for k, v in plans.items()}, contracts, tuple(tests))
    return catalog, diags


def unknown(kind: str, ref: ast.Ref, known: Iterable[str]) -> Diagnostic:
    """The diagnostic for a name that refers to nothing, with a did-you-mean."""
    known = list(known)
    hints = did_you_mean(ref.name, known)
    if not hints:
        hints = (f"known {kind}s: {', '.join(sorted(known)[:8])}" if known else f"no {kind} is defined yet",)
    return error(f"unknown-{kind}", f'unknown {kind} "{ref.name}"', ref.span, hints=hints)
