"""malsori (말소리, "speech sound"): Whisper speech recognition, Korean-first, in 99 languages.

>>> import malsori
>>> model = malsori.load_model("base")
>>> transcript = model.transcribe("meeting.m4a", language="ko", word_timestamps=True)
>>> for segment in transcript.segments:
...     print(segment.start, segment.end, segment.text)
"""

from ._version import __version__
from .errors import (
    AudioDecodeError,
    AudioNotFoundError,
    EmptyAudioError,
    InputError,
    InvalidOptionError,
    MalsoriError,
    ModelDownloadError,
    ModelError,
    ModelLoadError,
    ModelNotFoundError,
    NoSpeechError,
    OutputError,
)
from .glossary import Glossary, load_glossary, parse_glossary
from .model import Model, load_model
from .options import TranscribeOptions
from .results import LanguageInfo, Segment, Transcript, Word

__all__ = [
    "AudioDecodeError",
    "AudioNotFoundError",
    "EmptyAudioError",
    "Glossary",
    "InputError",
    "InvalidOptionError",
    "LanguageInfo",
    "MalsoriError",
    "Model",
    "ModelDownloadError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NoSpeechError",
    "OutputError",
    "Segment",
    "TranscribeOptions",
    "Transcript",
    "Word",
    "__version__",
    "load_glossary",
    "load_model",
    "parse_glossary",
]
