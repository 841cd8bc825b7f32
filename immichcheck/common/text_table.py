"""Plain text tables that fit a width: cells wrapped between words, numbers never split.

Used where the standard library serves better than rich (verify's table, on the path of every
run) and for the report on a terminal. A number and its unit (`723 µs`, `14,123 ops/s`,
`+28.5%`) are one word here, so a value always reads whole on one line.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

GAP = "  "
# Longer words (a parameters list without spaces, an image digest) fold rather than widen
# their column past this.
FOLD_AT = 20
# A wrapped text column narrower than this reads poorly: columns are left out first.
COMFORTABLE = 20
# A comma between list items (`concurrency=1,dataset=synthetic`), not inside a number.
_LIST_COMMA = re.compile(r",(?=[A-Za-z_])")
# Keeps a number and its unit together while wrapping: \x00 is never in a cell's text.
_GLUE = "\x00"
_NUMBER_THEN_UNIT = re.compile(
    r"(\d) (?=(?:[kM]?ops/s|[nµm]?s|[KMGT]i?B(?:/s)?|IOPS|x)(?:[,;)]|\s|$))"
)


def cell_len(text: str) -> int:
    """Columns `text` takes on a terminal: East Asian wide characters take two, combining
    marks none (most messages are ASCII, where this is len)."""
    if text.isascii():
        return len(text)
    return sum(_char_cells(char) for char in text)


def _char_cells(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def wrap_cells(text: str, width: int) -> list[str]:
    """`text` on lines of at most `width` columns: broken between words, a word longer than
    the column folded (never cut short with an ellipsis: nothing in a verdict is lost)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while cell_len(word) > width:
            if line:
                lines.append(line)
                line = ""
            head, word = _split_at_cells(word, width)
            lines.append(head)
        if not word:
            continue
        candidate = f"{line} {word}" if line else word
        if cell_len(candidate) <= width:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line or not lines:
        lines.append(line)
    return lines


def _split_at_cells(word: str, width: int) -> tuple[str, str]:
    """The longest head of `word` that fits `width` columns (at least one character)."""
    used = 0
    for index, char in enumerate(word):
        used += _char_cells(char)
        if used > width:
            return word[: max(index, 1)], word[max(index, 1) :]
    return word, ""


def wrap_value_cells(text: str, width: int) -> list[str]:
    """Like wrap_cells, but a number is never parted from its unit, and a list written
    `a=1,b=2` may break after its commas (`a=1, b=2`) rather than inside a name."""
    glued = _NUMBER_THEN_UNIT.sub(r"\1" + _GLUE, _LIST_COMMA.sub(", ", text))
    return [line.replace(_GLUE, " ") for line in wrap_cells(glued, width)]


def _words(text: str) -> list[str]:
    return _NUMBER_THEN_UNIT.sub(r"\1" + _GLUE, _LIST_COMMA.sub(", ", text)).split()


def _least_width(cells: Sequence[str]) -> int:
    """The narrowest a column gets: its longest word (up to FOLD_AT), whole values included."""
    return max([1, *(min(cell_len(word), FOLD_AT) for cell in cells for word in _words(cell))])


def fit_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    droppable: Sequence[str] = (),
) -> list[str]:
    """`rows` under `header` as aligned text lines at most `width` columns wide.

    While the table would not fit with its text columns wrapped to COMFORTABLE columns, the
    columns named in `droppable` are left out, first named first. Then the narrowest columns
    (values, statuses) get their full width first, and the text columns share what is left.
    """
    columns = [[header[i], *(row[i] for row in rows)] for i in range(len(header))]
    natural = [max(cell_len(cell) for cell in column) for column in columns]
    least = [_least_width(column) for column in columns]
    comfortable = [min(natural[i], max(least[i], COMFORTABLE)) for i in range(len(header))]
    keep = list(range(len(header)))

    def total(widths: Sequence[int], indexes: list[int]) -> int:
        return sum(widths[i] for i in indexes) + len(GAP) * (len(indexes) - 1)

    for name in droppable:
        if total(comfortable, keep) <= width:
            break
        if name in header:
            keep.remove(list(header).index(name))
    widths = list(least)
    spare = width - total(widths, keep)
    for i in sorted(keep, key=lambda i: natural[i]):
        grow = min(spare, natural[i] - widths[i])
        if grow < natural[i] - widths[i]:
            break  # this and every wider column share what is left, below
        widths[i] += grow
        spare -= grow
    # One column at a time to the column still furthest from its natural width.
    while spare > 0:
        short = max(keep, key=lambda i: natural[i] - widths[i])
        if natural[short] <= widths[short]:
            break
        widths[short] += 1
        spare -= 1
    lines = _text_row([header[i] for i in keep], [widths[i] for i in keep])
    lines.append(GAP.join("-" * widths[i] for i in keep))
    for row in rows:
        lines += _text_row([row[i] for i in keep], [widths[i] for i in keep])
    return lines


def _text_row(cells: Sequence[str], widths: Sequence[int]) -> list[str]:
    wrapped = [wrap_value_cells(cell, width) for cell, width in zip(cells, widths, strict=True)]
    height = max(len(lines) for lines in wrapped)
    out = []
    for index in range(height):
        parts = []
        for lines, width in zip(wrapped, widths, strict=True):
            text = lines[index] if index < len(lines) else ""
            parts.append(text + " " * (width - cell_len(text)))
        out.append(GAP.join(parts).rstrip())
    return out
