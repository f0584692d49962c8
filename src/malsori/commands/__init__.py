"""One module per CLI command group; each has ``register(subparsers)``.

Commands that need an extra (the server, fine-tuning, the microphone) import it only when they run.
"""

from __future__ import annotations

import argparse


def register_all(sub: argparse._SubParsersAction) -> None:
    from . import (
        batch,
        bench,
        convert,
        finetune,
        keys,
        live,
        models,
        quantize,
        serve,
        speakers,
        subtitles,
        transcribe,
        worker,
    )
    from . import eval as eval_command  # "eval" alone would shadow the builtin

    transcribe.register(sub)
    models.register(sub)
    batch.register(sub)
    eval_command.register(sub)
    serve.register(sub)
    worker.register(sub)
    keys.register(sub)
    finetune.register(sub)
    convert.register(sub)
    quantize.register(sub)
    live.register(sub)
    subtitles.register(sub)
    speakers.register(sub)
    bench.register(sub)
