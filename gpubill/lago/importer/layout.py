"""Positions for the IR the importer builds, so that the formatter prints it in order.

The importer builds `gpubill.dsl.ast` nodes and prints them with the
language's formatter (`gpubill.dsl.fmt.format_document`); it writes no `.bill`
syntax of its own. The formatter orders a block's clauses and places comments
by their source position, so `Layout` gives each clause, block and comment a
virtual one: every comment and every clause takes the next line of the file,
in the order the importer means them to be printed.
"""

from __future__ import annotations

import attrs

from gpubill.dsl import ast
from gpubill.dsl.comments import Comment
from gpubill.dsl.fmt import format_document

#: A column after any clause's start: a comment placed there trails the clause's line.
_END_OF_LINE = 1 << 20


@attrs.define
class Layout:
    """The lines of one generated file: comments and the positions of its IR nodes."""

    path: str
    line: int = 0
    comments: list = attrs.Factory(list)
    blocks: list = attrs.Factory(list)

    def note(self, text: str, *, blank_after: bool = False) -> None:
        """A comment on a line of its own, before what comes next (`text` is one line)."""
        self.line += 1
        self.comments.append(Comment(self.line, 1, f"# {text}", standalone=True, blank_after=blank_after))

    def trail(self, text: str) -> None:
        """A comment at the end of the line taken last."""
        self.comments.append(Comment(self.line, _END_OF_LINE, f"# {text}", standalone=False))

    def at(self) -> ast.Span:
        """The next line: for a clause or a block's head."""
        self.line += 1
        return ast.Span(self.path, self.line, 1, self.line, 2)

    def close(self, head: ast.Span) -> ast.Span:
        """A block's span: from its head to its `}` on the next line."""
        self.line += 1
        return ast.Span(self.path, head.line, head.col, self.line, 2)

    def mark(self) -> tuple[int, int]:
        return self.line, len(self.comments)

    def drop_since(self, mark: tuple[int, int]) -> None:
        """Forget the comments taken since `mark` (a block that failed to convert)."""
        self.line, n = mark
        del self.comments[n:]

    def text(self) -> str:
        """The file as `gpubill fmt` prints it."""
        return format_document(ast.Document(self.path, tuple(self.blocks)), self.comments)
