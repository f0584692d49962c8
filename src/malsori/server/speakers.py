"""Diarization for requests and jobs: the speaker fields into ``DiarizeOptions``.

Known voices arrive as OpenAI sends them: ``known_speaker_names[]`` with one
``known_speaker_references[]`` each, a data URL of a short recording
(``data:audio/wav;base64,...``). Each reference is embedded here, before the request is queued,
so a reference that is not audio or holds no speech is a 400 naming the field. Nothing here
knows HTTP; the routers call it on a worker thread (embedding takes a moment).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses

from ..diarize.options import DiarizeOptions, check_speaker_name
from ..errors import InvalidOptionError, SpeakerReferenceError
from .exceptions import InvalidParameterError
from .schemas import SpeakerParams

NAMES = "known_speaker_names"
REFERENCES = "known_speaker_references"


def wants_speakers(params: SpeakerParams, response_format: str | None = None) -> bool:
    return params.diarize or response_format == "diarized_json"


def reference_bytes(url: str) -> bytes:
    """The audio of a ``data:<type>;base64,<data>`` URL."""
    head, comma, data = url.partition(",")
    if not comma or not head.startswith("data:") or not head.endswith(";base64"):
        raise InvalidParameterError(
            f"{REFERENCES}: each reference must be a data URL (data:audio/wav;base64,...)",
            REFERENCES,
        )
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameterError(f"{REFERENCES}: not valid base64", REFERENCES) from None


def speaker_options(
    params: SpeakerParams, response_format: str | None, device: str
) -> DiarizeOptions | None:
    """What the request asks of diarization (None: nothing); known voices embedded."""
    if not wants_speakers(params, response_format):
        if params.known_speaker_names or params.known_speaker_references:
            raise InvalidParameterError("known speakers need diarize=true", NAMES)
        return None
    from ..diarize import reference_speaker
    from ..diarize.encoder import require_diarize_extra

    require_diarize_extra()
    names, refs = params.known_speaker_names, params.known_speaker_references
    if len(names) != len(refs):
        raise InvalidParameterError(
            f"{len(names)} {NAMES} but {len(refs)} {REFERENCES}: give one reference a name", NAMES
        )
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"{NAMES}: a name is given twice", NAMES)
    try:
        for name in names:
            check_speaker_name(name)
    except InvalidOptionError as e:
        raise InvalidParameterError(str(e), NAMES) from e
    try:
        base = DiarizeOptions(params.num_speakers, params.min_speakers, params.max_speakers)
    except InvalidOptionError as e:  # the counts contradict each other
        raise InvalidParameterError(str(e), "max_speakers") from e
    try:
        known = tuple(
            reference_speaker(n, reference_bytes(r), device=device)
            for n, r in zip(names, refs, strict=True)
        )
    except SpeakerReferenceError as e:
        raise InvalidParameterError(str(e), REFERENCES) from e
    return dataclasses.replace(base, known=known, device=device)
