"""Other tools' interfaces on malsori: their names, defaults and result shapes, mapped onto
malsori's options and results and back. No decoding happens here.

- ``malsori.compat.cli``: openai-whisper's ``whisper`` and ``whisper-ctranslate2`` command-line
  spellings, taken by ``malsori transcribe`` (the anchors' option lists are data, in ``data/``).
- ``malsori.compat.faster_whisper``: faster-whisper's ``WhisperModel`` and
  ``BatchedInferencePipeline``.
- ``malsori.compat.whisper``: openai-whisper's ``load_model`` and ``transcribe``.
"""
