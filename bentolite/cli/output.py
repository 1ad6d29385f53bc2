"""Print what the bundle commands return: a rich table for people, JSON or YAML for programs.

JSON and YAML carry the same records; their keys are stable (see ``BundleInfo.to_dict``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click

from bentolite.store import BundleInfo

TABLE_FORMATS = ("table", "json", "yaml")
DATA_FORMATS = ("yaml", "json")


def print_data(data: Any, fmt: str) -> None:
    """``data`` as indented JSON or block YAML on stdout."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)


def print_bundles(bundles: Iterable[BundleInfo], fmt: str) -> None:
    """Bundles as a table (tag, APIs, size, creation time) or as a list of records."""
    bundles = list(bundles)
    if fmt != "table":
        print_data([b.to_dict() for b in bundles], fmt)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("Tag", no_wrap=True)
    table.add_column("APIs")
    table.add_column("Size", justify="right", no_wrap=True)
    table.add_column("Created", no_wrap=True)
    for bundle in bundles:
        apis = ", ".join(a.name for a in bundle.meta.apis)
        table.add_row(bundle.tag, apis, human_size(bundle.size_bytes()), short_time(bundle.created_at))
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # a pipe or a log has no width to fit; keep rows whole
    console.print(table)


def human_size(size: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # not reached


def short_time(timestamp: str) -> str:
    """``'2025-01-02T03:04:05.678901Z'`` -> ``'2025-01-02 03:04:05'`` (UTC)."""
    return timestamp.replace("T", " ")[:19]
