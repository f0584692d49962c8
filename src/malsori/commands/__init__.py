"""One module per CLI command group; each has ``register(subparsers)``."""

from __future__ import annotations

import argparse


def register_all(sub: argparse._SubParsersAction) -> None:
    from . import models, transcribe

    transcribe.register(sub)
    models.register(sub)
