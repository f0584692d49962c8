"""``malsori keys create|list|revoke``: the server's API keys, stored hashed in its database.

Uses the same settings as ``malsori serve`` (``MALSORI_DATA_DIR``, ``MALSORI_DATABASE_URL``) so the
keys land where the server looks for them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .serve import load_settings, require_server_extra


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="create, list and revoke the server's API keys")
    p.add_argument("--data-dir", help="the server's data folder (default: as `malsori serve`)")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = ksub.add_parser("create", help="make a key and print it (shown only this once)")
    create.add_argument("name", help="who or what the key is for")
    create.set_defaults(handler=run_create)
    ls = ksub.add_parser("list", help="every key: id, name, start of the secret, state")
    ls.set_defaults(handler=run_list)
    revoke = ksub.add_parser("revoke", help="stop a key from working (by id)")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(handler=run_revoke)


def _store(args: argparse.Namespace) -> Any:
    require_server_extra("keys")
    from ..server.db import Database, make_private_dir
    from ..server.keys import KeyStore

    settings = load_settings({"data_dir": args.data_dir} if args.data_dir else {})
    make_private_dir(settings.data_dir)
    return KeyStore(Database(settings.sqlalchemy_url()))


def run_create(args: argparse.Namespace) -> int:
    key, secret = _store(args).create(args.name)
    print(secret)
    print(f"created {key.id} ({key.name}); the key above is shown only once", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    keys = _store(args).list()
    print(f"{'ID':<18} {'NAME':<24} {'KEY':<14} {'CREATED (UTC)':<20} STATE")
    for k in keys:
        state = "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d %H:%M}"
        created = f"{k.created_at:%Y-%m-%d %H:%M:%S}"
        print(f"{k.id:<18} {k.name[:24]:<24} {k.prefix + '…':<14} {created:<20} {state}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    key = _store(args).revoke(args.key_id)
    print(f"revoked {key.id} ({key.name})")
    return 0
