"""``POST /v1/audio/transcriptions`` and ``/v1/audio/translations`` (OpenAI-compatible)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from ...errors import MalsoriError
from ...options import TranscribeOptions
from ...results import Segment, Transcript
from ..deps import OwnerDep, ServicesDep
from ..errors import envelope, kind_of
from ..forms import multipart_openapi, parse_params, read_multipart, receive_audio
from ..responses import delta_event, done_event, render, sse
from ..schemas import Task, TranscriptionParams
from ..services import Services
from ..transcriber import SegmentCallback

router = APIRouter(prefix="/v1/audio", tags=["audio"])

_FORM_DOC = multipart_openapi(TranscriptionParams)


@router.post("/transcriptions", openapi_extra=_FORM_DOC)
async def create_transcription(request: Request, services: ServicesDep, _: OwnerDep) -> Response:
    """Transcribe audio in its spoken language."""
    return await _handle(request, services, "transcribe")


@router.post("/translations", openapi_extra=_FORM_DOC)
async def create_translation(request: Request, services: ServicesDep, _: OwnerDep) -> Response:
    """Translate speech into English text."""
    return await _handle(request, services, "translate")


async def _handle(request: Request, services: Services, task: Task) -> Response:
    form = await read_multipart(request, services)
    try:
        params = parse_params(TranscriptionParams, form)
        options = services.transcriber.options(params, task)
        audio, label = await receive_audio(services, form)
    finally:
        await form.close()
    loop = asyncio.get_running_loop()
    segments: asyncio.Queue[Segment | None] = asyncio.Queue()

    def on_segment(segment: Segment) -> None:
        loop.call_soon_threadsafe(segments.put_nowait, segment)

    callback = on_segment if params.stream else None
    future, cancel = _submit(services, audio.path, options, label, callback)
    if params.stream:
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(segments.put_nowait, None))
        return StreamingResponse(
            _events(segments, future, cancel),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    transcript = await asyncio.wrap_future(future)
    body, media_type = render(transcript, params.response_format, params.timestamp_granularities)
    return Response(body, media_type=media_type)


def _submit(
    services: Services,
    path: Path,
    options: TranscribeOptions,
    label: str,
    on_segment: SegmentCallback | None,
) -> tuple[Future[Transcript], threading.Event]:
    """Queue the work in a free slot; the spooled file is deleted if it cannot be queued."""
    try:
        with services.pool.slot() as slot:
            return services.transcriber.submit(
                path, options, label=label, slot=slot, on_segment=on_segment
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def _events(
    segments: asyncio.Queue[Segment | None],
    future: Future[Transcript],
    cancel: threading.Event,
) -> AsyncIterator[bytes]:
    """Server-sent events: a delta per segment, then done (or an error in OpenAI's envelope)."""
    try:
        while (segment := await segments.get()) is not None:
            yield sse(delta_event(segment))
        try:
            transcript = future.result()
        except MalsoriError as e:
            kind = kind_of(e)
            error = envelope(str(e), kind.type, param=kind.param, code=kind.code)
            yield sse({"type": "error", **error})
            return
        yield sse(done_event(transcript))
    finally:
        cancel.set()  # no effect once finished; stops the worker when the client went away
