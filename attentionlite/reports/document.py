"""A report as a list of blocks, rendered to Markdown and to one self-contained HTML page.

Both renderings come from the same blocks, so ``report.md`` and ``index.html``
can never disagree.  The HTML embeds every figure as a base64 PNG so the page
opens from disk with nothing beside it; the Markdown links the PNG files.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class BulletList:
    items: tuple[str, ...]
    summary: bool = False  # set apart on the page: the findings a reader should see first


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG figure: ``path`` is relative to the report folder."""

    path: str
    caption: str


@dataclass(frozen=True)
class FileLinks:
    """Links to data files in the report folder, each with what it holds."""

    files: tuple[tuple[str, str], ...] = field(default=())


Block = Heading | Paragraph | BulletList | Table | Figure | FileLinks


def linked_paths(blocks: Sequence[Block]) -> list[str]:
    """Every file in the report folder that the blocks link to or show."""
    paths: list[str] = []
    for block in blocks:
        if isinstance(block, Figure):
            paths.append(block.path)
        elif isinstance(block, FileLinks):
            paths.extend(path for path, _ in block.files)
    return paths


# ----------------------------------------------------------------------------- Markdown


def to_markdown(title: str, blocks: Sequence[Block]) -> str:
    """The blocks as GitHub-flavoured Markdown, figures and files linked by relative path."""
    parts = [f"# {title}"]
    parts.extend(_MARKDOWN[type(block)](block) for block in blocks)
    return "\n\n".join(parts) + "\n"


def _md_escape_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(table: Table) -> str:
    lines = ["| " + " | ".join(_md_escape_cell(c) for c in table.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    lines.extend("| " + " | ".join(_md_escape_cell(c) for c in row) + " |" for row in table.rows)
    caption = f"*{table.caption}*\n\n" if table.caption else ""
    return caption + "\n".join(lines)


_MARKDOWN = {
    Heading: lambda b: "#" * b.level + " " + b.text,
    Paragraph: lambda b: b.text,
    BulletList: lambda b: "\n".join(f"- {item}" for item in b.items),
    Table: _md_table,
    Figure: lambda b: f"![{b.caption}]({b.path})\n\n*{b.caption}*",
    FileLinks: lambda b: "\n".join(f"- [`{path}`]({path}): {what}" for path, what in b.files),
}


# ----------------------------------------------------------------------------- HTML

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       max-width: 1180px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.7em; margin-bottom: .2em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f4f6; white-space: normal; vertical-align: bottom; }
.text { text-align: left; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .3em; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-style: italic; color: #444; }
code { background: #f3f4f6; padding: 0 3px; border-radius: 3px; }
.summary { background: #f6f8fa; border-left: 4px solid #3b6ea8; padding: .4em 1.2em; }
"""


def to_html(title: str, blocks: Sequence[Block], images: Mapping[str, bytes]) -> str:
    """One self-contained page; ``images`` maps each figure path to its PNG bytes."""
    body = "\n".join(_html_block(block, images) for block in blocks)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def _inline_markup(text: str) -> str:
    """Escape text, keeping Markdown's `code` and **bold** spans as HTML."""
    escaped = html.escape(text)
    pieces = escaped.split("`")
    escaped = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
    pieces = escaped.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(pieces))


def _html_table(table: Table) -> str:
    """Columns of numbers align right (so digits line up), columns of words left."""
    caption = f"<caption>{_inline_markup(table.caption)}</caption>" if table.caption else ""
    aligns = [_align(_numeric_column([row[i] for row in table.rows])) for i in range(len(table.columns))]
    head = "".join(f"<th{align}>{_inline_markup(c)}</th>" for c, align in zip(table.columns, aligns))
    rows = "".join(
        "<tr>" + "".join(f"<td{align}>{_inline_markup(c)}</td>" for c, align in zip(row, aligns)) + "</tr>\n"
        for row in table.rows
    )
    return f"<table>{caption}<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody></table>"


def _is_number(text: str) -> bool:
    return text.removeprefix("-")[:1].isdigit()


def _numeric_column(cells: list[str]) -> bool:
    """Every cell a number, "-" (nothing to show) aside."""
    shown = [cell for cell in cells if cell != "-"]
    return bool(shown) and all(_is_number(cell) for cell in shown)


def _align(numeric: bool) -> str:
    return "" if numeric else " class=\"text\""


def _html_figure(figure: Figure, images: Mapping[str, bytes]) -> str:
    data = base64.b64encode(images[figure.path]).decode("ascii")
    return (
        f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{html.escape(figure.caption)}\">"
        f"<figcaption>{_inline_markup(figure.caption)} (<a href=\"{html.escape(figure.path)}\">"
        f"{html.escape(figure.path)}</a>)</figcaption></figure>"
    )


def _html_files(links: FileLinks) -> str:
    items = "".join(
        f"<li><a href=\"{html.escape(path)}\"><code>{html.escape(path)}</code></a>: {_inline_markup(what)}</li>"
        for path, what in links.files
    )
    return f"<ul>{items}</ul>"


def _html_block(block: Block, images: Mapping[str, bytes]) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{_inline_markup(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_inline_markup(block.text)}</p>"
    if isinstance(block, BulletList):
        opening = "<ul class=\"summary\">" if block.summary else "<ul>"
        return opening + "".join(f"<li>{_inline_markup(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Figure):
        return _html_figure(block, images)
    return _html_files(block)
