"""Entry point of the `mint` command: parses arguments and dispatches to a subcommand module.

Each subcommand module exposes `register(subparsers)`, which adds its parser and sets
`func=<callable(args) -> int>`. Errors that mint raises on purpose (`MintError`) are printed as
one line and exit with status 2; no traceback for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from mint.errors import MintError

# Modules under mint.cli that register subcommands, in help order.
SUBCOMMAND_MODULES: tuple[str, ...] = ("demo", "train", "instruct", "data", "eval", "serve", "weights")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mint",
        description="MINT audio-language models: train, evaluate and serve.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"mint.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except MintError as error:
        print(f"mint {args.command}: error: {error_message(error)}", file=sys.stderr)
        return 2


def error_message(error: MintError) -> str:
    """The error's own message, without the worker traceback a DataLoader worker wraps around it.

    torch re-raises an exception from a worker process as the same class with the worker's formatted
    traceback as its message; that traceback ends with `module.Class: <original message>`.
    """
    text = str(error)
    marker = f"{type(error).__module__}.{type(error).__qualname__}: "
    if "Original Traceback" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text


def run() -> NoReturn:
    """The `mint` executable and `python -m mint.cli.main`: `main`, then exit with its status.

    A rank of a multi-process run closes its process group and ends without interpreter finalisation
    (`mint.distributed.end_process` says why).
    """
    code = main()
    # A command that never imported torch.distributed has no process group (and `mint weights list`
    # should not pay for importing torch).
    if "torch.distributed" in sys.modules:
        from mint.distributed import end_process

        end_process(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
