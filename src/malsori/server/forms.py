"""Reading a multipart upload: the form fields into typed parameters, the file onto disk.

The body is read only after authentication and only while a queue slot is free, so a refused
request costs no upload. The size limit is enforced twice: by ``BodyLimitMiddleware`` on the raw
body as it streams in, and on the file part itself while it is copied into the spool.

Interop: the media type is matched case-insensitively (``Multipart/Form-Data`` is the same type,
RFC 9110), and the part named ``file`` is the upload whether or not it carries a file name (httpx,
and so the openai client, leaves ``filename`` out when it is empty).
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from .errors import ApiError
from .services import Services
from .uploads import CheckedAudio, display_name

P = TypeVar("P", bound=BaseModel)

MAX_FIELDS = 32
# A text field: room for a known speaker's reference recording as a data URL (about 30 s of
# 16 kHz WAV in base64; OpenAI asks for 2-10 s).
MAX_FIELD_BYTES = 1024 * 1024
# Room for the other fields and multipart headers in a body: four references and the rest.
FORM_OVERHEAD_BYTES = 4 * MAX_FIELD_BYTES + 256 * 1024
FILE_FIELD = "file"
MULTIPART = b"multipart/form-data"
_LIST_FIELDS = frozenset(
    {"timestamp_granularities", "include", "known_speaker_names", "known_speaker_references"}
)


class _UploadParser(MultiPartParser):
    """Starlette's multipart parser, except that the ``file`` part is always a file.

    Starlette tells files from text fields by the ``filename`` parameter alone; a client that
    sends an empty name may leave the parameter out, and the audio would then be read as text
    (and refused as too long a field). The ``file`` part is given an empty name instead.
    """

    def on_headers_finished(self) -> None:
        part = self._current_part
        _, options = parse_options_header(part.content_disposition)
        if options.get(b"name") == FILE_FIELD.encode() and b"filename" not in options:
            part.content_disposition = (part.content_disposition or b"") + b'; filename=""'
        super().on_headers_finished()


def multipart_openapi(params: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for an upload route: a ``file`` plus ``params``' fields."""
    schema = {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary"},
            **params.model_json_schema()["properties"],
        },
    }
    body = {"content": {"multipart/form-data": {"schema": schema}}, "required": True}
    return {"requestBody": body}


async def read_multipart(request: Request, services: Services) -> FormData:
    """Parse a ``multipart/form-data`` body (one file at most) after checking for queue room."""
    media_type, _ = parse_options_header(request.headers.get("content-type"))
    if media_type != MULTIPART:  # parse_options_header lowercases the type
        raise ApiError("expected a multipart/form-data body with a 'file' field", param="file")
    services.pool.check_room()
    parser = _UploadParser(
        request.headers,
        request.stream(),
        max_files=1,
        max_fields=MAX_FIELDS,
        max_part_size=MAX_FIELD_BYTES,
    )
    try:
        return await parser.parse()
    except MultiPartException as e:
        raise ApiError(e.message) from None


def form_fields(form: FormData) -> dict[str, Any]:
    """The text fields; ``name[]`` (and repeated list fields) collected into lists,
    ``name[key]`` (how the openai client sends an object) into a dict."""
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            continue
        name = key.removesuffix("[]")
        outer, bracket, inner = name.partition("[")
        if bracket and inner.endswith("]") and inner[:-1]:
            nested = fields.setdefault(outer, {})
            if isinstance(nested, dict):
                nested[inner[:-1]] = value
                continue
        if key.endswith("[]") or name in _LIST_FIELDS:
            fields.setdefault(name, []).append(value)
        else:
            fields[name] = value
    return fields


def parse_params(cls: type[P], form: FormData) -> P:
    """Validate the form fields into ``cls``; the first bad field becomes a 400 naming it."""
    try:
        return cls.model_validate(form_fields(form))
    except ValidationError as e:
        first = e.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if not isinstance(p, int)) or None
        raise ApiError(f"{param}: {first['msg']}", param=param) from None


def uploaded_file(form: FormData) -> UploadFile:
    upload = form.get(FILE_FIELD)
    if not isinstance(upload, UploadFile):
        raise ApiError("file: an audio file upload is required", param=FILE_FIELD)
    return upload


async def receive_audio(services: Services, form: FormData, owner: str) -> tuple[CheckedAudio, str]:
    """Spool the form's file and decode it on the upload checker's bounded pool (reserve the
    queue slot first): the checked audio and the client's name as a label."""
    upload = uploaded_file(form)
    limits = services.settings.limits
    path = await run_in_threadpool(services.spool.save, upload.file, limits.max_upload_bytes)
    try:
        audio = await services.checker.check(path, owner)
    except BaseException:
        services.spool.discard(path)
        raise
    return audio, display_name(upload.filename)
