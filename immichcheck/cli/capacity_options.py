"""The options that size the library for capacity estimates, shared by bench, report, export."""

from __future__ import annotations

import click

from immichcheck.cli.options import Size, _stack, option

capacity_options = _stack(
    option(
        "--assets",
        type=click.IntRange(min=0),
        metavar="N",
        help="Photos and videos in the library, for the capacity estimate (default: read "
        "with an admin --api-key from GET /api/server/statistics by bench).",
    ),
    option(
        "--library-bytes",
        type=Size(),
        metavar="SIZE",
        help="Size of the library, e.g. 250GB, for the backup-time estimate.",
    ),
    option(
        "--faces-per-photo",
        type=click.FloatRange(min=0, max=100),
        help="Faces per photo assumed, to size the face clustering that is not measured "
        "(default 1, an assumption).",
    ),
)
