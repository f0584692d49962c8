"""Exceptions raised by malsori, each with the CLI exit code it maps to.

The library raises these (keeping the original cause with ``raise ... from e``); the CLI turns them
into one line on stderr and the exit code below, and the server maps them to HTTP statuses.

Exit codes (documented in the README):

    0  success
    1  unexpected internal error (a bug: please report it)
    2  bad usage: an unknown or impossible option, an unknown language code
    3  bad input: missing file, a directory, empty file, no audio, undecodable or truncated audio,
       a subtitle file that is not SRT or WebVTT or has broken timestamps
    4  model problem: unknown model, not installed, cannot be downloaded, cannot be loaded
    5  output problem: the output folder or file cannot be written
    6  ``malsori subtitles lint`` found a cue that breaks the profile
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations


class MalsoriError(Exception):
    """Base class for every error malsori reports to a user."""

    exit_code: int = 1


class InvalidOptionError(MalsoriError, ValueError):
    """An option value or a combination of options that cannot work."""

    exit_code = 2


class MissingExtraError(MalsoriError):
    """An optional part of malsori is used without its packages installed."""

    exit_code = 2


def require_extra(extra: str, modules: tuple[str, ...], what: str) -> None:
    """Raise one line naming the extra to install when any of ``modules`` is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(
            f"{what} needs the {extra} extra (missing: {', '.join(missing)}): "
            f"pip install 'malsori[{extra}]'"
        )


class InputError(MalsoriError):
    """The input cannot be used as audio."""

    exit_code = 3


class AudioNotFoundError(InputError, FileNotFoundError):
    """The input path does not exist or is not a regular file."""


class AudioDecodeError(InputError):
    """The input is not decodable audio (wrong format, corrupt or truncated)."""


class EmptyAudioError(InputError):
    """The input is an empty file or decodes to zero samples."""


class NoSpeechError(InputError):
    """The input holds no speech where speech is required (language detection)."""


class ModelError(MalsoriError):
    """A model cannot be resolved, installed or loaded."""

    exit_code = 4


class ModelNotFoundError(ModelError):
    """Neither a known model nor a CTranslate2 Whisper folder, or not installed."""


class ModelDownloadError(ModelError):
    """The model would have to be downloaded and that failed (for example: no network)."""


class ModelLoadError(ModelError):
    """The model files exist but CTranslate2 cannot load them (corrupt or incomplete)."""


class OutputError(MalsoriError, OSError):
    """An output file or folder cannot be written."""

    exit_code = 5


class OutputBusyError(OutputError):
    """Another batch job is writing to the same output folder."""


class SpeakerReferenceError(InputError):
    """A known speaker's reference recording is not audio or holds no speech."""


class DiarizationError(MalsoriError):
    """Speaker diarization could not run (the transcript itself is kept, without speakers)."""

    exit_code = 3


class ScorerError(MalsoriError):
    """A language model could not score a text (N-best rescoring then keeps Whisper's reading)."""


class SubtitleFileError(InputError):
    """A subtitle file that cannot be read: not text, not SRT or WebVTT, broken timestamps."""
