"""``POST /v1/audio/transcriptions`` and ``/v1/audio/translations`` (OpenAI-compatible).

A request counts against its key's ``max_concurrent_requests_per_key`` from its upload to its
answer; a queue slot is reserved before its upload is decoded. When the client goes away first,
its work is cancelled: dropped from the queue while waiting, stopped at the next segment while
running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import Future
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...diarize.options import DiarizeOptions
from ...errors import MalsoriError
from ...options import TranscribeOptions
from ...results import Segment, Transcript
from ..deps import OwnerDep, ServicesDep
from ..errors import envelope, kind_of
from ..forms import multipart_openapi, parse_params, read_multipart, receive_audio
from ..quotas import Lease
from ..responses import delta_event, diarization_headers, done_event, render, sse
from ..scheduler import Slot, WorkItem
from ..schemas import Task, TranscriptionParams
from ..services import Services
from ..speakers import speaker_options
from ..transcriber import SegmentCallback

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/audio", tags=["audio"])

_FORM_DOC = multipart_openapi(TranscriptionParams)
CLIENT_CLOSED = 499  # the client left before the answer (nginx's code; it never reaches them)


@router.post("/transcriptions", openapi_extra=_FORM_DOC)
async def create_transcription(
    request: Request, services: ServicesDep, owner: OwnerDep
) -> Response:
    """Transcribe audio in its spoken language."""
    return await _handle(request, services, owner, "transcribe")


@router.post("/translations", openapi_extra=_FORM_DOC)
async def create_translation(request: Request, services: ServicesDep, owner: OwnerDep) -> Response:
    """Translate speech into English text."""
    return await _handle(request, services, owner, "translate")


async def _handle(request: Request, services: Services, owner: str, task: Task) -> Response:
    lease = services.quotas.requests.acquire(owner)  # given back when the work is over
    loop = asyncio.get_running_loop()
    segments: asyncio.Queue[Segment | None] = asyncio.Queue()

    def on_segment(segment: Segment) -> None:
        loop.call_soon_threadsafe(segments.put_nowait, segment)

    try:
        form = await read_multipart(request, services)
        try:
            params = parse_params(TranscriptionParams, form)
            options = params.apply(services.transcriber.options(params, task))
            callback = on_segment if params.stream else None
            diarize = await run_in_threadpool(
                speaker_options, params, params.response_format, services.transcriber.device
            )
            if diarize is not None:  # speakers are given word by word
                options = options.replace(word_timestamps=True)
            with services.pool.slot() as slot:  # capacity first, then the decoding check
                audio, label = await receive_audio(services, form, owner)
                work = (audio.path, options, label, callback, diarize, params.model)
                future, item = _submit(services, slot, *work)
        finally:
            await form.close()
    except BaseException:
        lease.release()
        raise
    future.add_done_callback(lambda _: lease.release())  # or when the client leaves, below
    if params.stream:
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(segments.put_nowait, None))
        return StreamingResponse(
            _events(segments, future, item, services, lease, params.logprobs),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        transcript = await _result_unless_client_leaves(request, services, future, item)
    finally:
        lease.release()
    if transcript is None:
        return Response(status_code=CLIENT_CLOSED)
    body, media_type = render(
        transcript,
        params.response_format,
        params.timestamp_granularities,
        with_logprobs=params.logprobs,
    )
    return Response(body, media_type=media_type, headers=diarization_headers(transcript))


def _submit(
    services: Services,
    slot: Slot,
    path: Path,
    options: TranscribeOptions,
    label: str,
    on_segment: SegmentCallback | None,
    diarize: DiarizeOptions | None,
    model: str | None,
) -> tuple[Future[Transcript], WorkItem]:
    """Queue the work in its reserved slot; the spooled file is deleted if it cannot be queued."""
    try:
        return services.transcriber.submit(
            path,
            options,
            label=label,
            slot=slot,
            model=model,
            on_segment=on_segment,
            diarize=diarize,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def _until_disconnected(request: Request) -> None:
    """Return when the client closes the connection (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _result_unless_client_leaves(
    request: Request, services: Services, future: Future[Transcript], item: WorkItem
) -> Transcript | None:
    """The transcript; None (the work cancelled) when the client disconnects first."""
    loop = asyncio.get_running_loop()
    over = asyncio.Event()
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(over.set))
    finished = asyncio.ensure_future(over.wait())
    gone = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({finished, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this handler itself cancelled (the server stops)
        services.pool.cancel(item)
        raise
    finally:
        finished.cancel()
        gone.cancel()
    if not future.done():
        services.pool.cancel(item)
        logger.info("client disconnected: its transcription is cancelled")
        return None
    return future.result()


async def _events(
    segments: asyncio.Queue[Segment | None],
    future: Future[Transcript],
    item: WorkItem,
    services: Services,
    lease: Lease,
    with_logprobs: bool = False,
) -> AsyncIterator[bytes]:
    """Server-sent events: a delta per segment, then done (or an error in OpenAI's envelope)."""
    try:
        while (segment := await segments.get()) is not None:
            yield sse(delta_event(segment, with_logprobs=with_logprobs))
        try:
            transcript = future.result()
        except MalsoriError as e:
            kind = kind_of(e)
            error = envelope(str(e), kind.type, param=kind.param, code=kind.code)
            yield sse({"type": "error", **error})
            return
        yield sse(done_event(transcript, with_logprobs=with_logprobs))
    finally:
        services.pool.cancel(item)  # no effect once finished; stops the work if the client left
        lease.release()
