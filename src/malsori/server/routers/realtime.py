"""``/v1/realtime``: live transcription over a WebSocket, in malsori's own protocol or OpenAI's.

malsori's protocol (docs/streaming.md): the client sends audio (16 kHz PCM16, or a browser's
WebM/Opus as MediaRecorder makes it) and ``{"type": "stop"}``; the server sends JSON events:
``ready``, ``partial``, ``final``, ``error``, ``end``.

OpenAI's Realtime transcription protocol (``realtime_openai.py``, docs/server.md) is spoken when
the connection says it is an OpenAI client (an ``OpenAI-Beta`` header, the official SDKs'
``X-Stainless-*`` headers, an ``intent`` query parameter, or a ``realtime`` /
``openai-insecure-api-key.`` subprotocol), or else when its first message is an OpenAI event.

The API key is checked as for HTTP; since browsers cannot set headers on a WebSocket, it may also
come as the ``api_key`` query parameter, a ``malsori-key.<key>`` subprotocol or OpenAI's
``openai-insecure-api-key.<key>`` subprotocol. Both protocols run on the same engine, under the
same limits (``live.LiveStream``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from ...streaming import OnlineProcessor, StreamingOptions
from ..errors import kind_of
from ..exceptions import InvalidParameterError, NotReadyError
from ..keys import LOCAL_OWNER
from ..live import LiveStream, RealtimeParams, SwitchProtocol, fail
from ..realtime_openai import (
    OPENAI_CLIENT_EVENTS,
    OPENAI_KEY_SUBPROTOCOL,
    OPENAI_SUBPROTOCOL,
    OpenAIStream,
    is_openai_client,
    openai_error_shape,
)
from ..services import Services
from ..streams import TooManySessionsError

logger = logging.getLogger(__name__)

router = APIRouter(tags=["realtime"])

SUBPROTOCOL = "malsori.v1"
KEY_SUBPROTOCOL = "malsori-key."


def _secret(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for protocol in websocket.scope.get("subprotocols", []):
        for prefix in (KEY_SUBPROTOCOL, OPENAI_KEY_SUBPROTOCOL):
            if protocol.startswith(prefix):
                return str(protocol[len(prefix) :])
    return websocket.query_params.get("api_key") or None


def _params(websocket: WebSocket, *, openai: bool) -> RealtimeParams:
    query = dict(websocket.query_params)
    if openai:  # OpenAI's URL names its realtime model, not a transcription model
        query = {k: v for k, v in query.items() if k not in ("model", "encoding", "sample_rate")}
    try:
        params = RealtimeParams.model_validate(query)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidParameterError(f"invalid {where}: {first['msg']}", param=where) from None
    if params.encoding == "pcm16" and params.sample_rate != 16000:
        raise InvalidParameterError("pcm16 audio must be 16000 Hz", param="sample_rate")
    return params


def _streaming(services: Services) -> StreamingOptions:
    rt = services.settings.realtime
    return StreamingOptions(
        min_chunk_s=rt.min_chunk_s,
        endpoint_silence_ms=rt.endpoint_silence_ms,
        encoder_window_s=rt.encoder_window_s,
        fallback=rt.fallback,
        decode_budget_s=rt.decode_budget_s or None,
    )


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    """Stream audio in, get partial and final text back as it is decoded."""
    offered = websocket.scope.get("subprotocols", [])
    openai = is_openai_client(websocket)
    chosen = next((p for p in (SUBPROTOCOL, OPENAI_SUBPROTOCOL) if p in offered), None)
    await websocket.accept(subprotocol=chosen)
    shape = openai_error_shape if openai else _same
    try:
        services: Services | None = getattr(websocket.app.state, "services", None)
        if services is None or services.pool.stopping.is_set():
            raise NotReadyError("the server is starting or stopping")
        owner, secret = LOCAL_OWNER, None
        if services.settings.auth.enabled:
            secret = _secret(websocket)
            owner = (await run_in_threadpool(services.keys.authenticate, secret)).id
        params = _params(websocket, openai=openai)
        await run_in_threadpool(services.models.load, params.model)  # before the stream starts
        options = services.transcriber.options(params, params.task)
        options = options.replace(beam_size=services.settings.realtime.beam_size)
        if openai:
            await OpenAIStream.start(websocket, services, options, _streaming(services),
                                     params, owner, secret)  # fmt: skip
            return
        decoder = services.transcriber.live_decoder(params.model)
        engine = OnlineProcessor(decoder, options, _streaming(services))
        stream = LiveStream(websocket, services, engine, params, owner, secret)
        stream.switch_on = OPENAI_CLIENT_EVENTS
        try:
            await stream.run()
        except SwitchProtocol as switch:  # the first message was an OpenAI event
            shape = openai_error_shape
            logger.info("live stream %s: the client speaks OpenAI's protocol", stream.session.id)
            await OpenAIStream.start(websocket, services, options, _streaming(services),
                                     params, owner, secret, first=switch.messages)  # fmt: skip
    except WebSocketDisconnect:
        logger.info("live stream: the client left")
    except Exception as e:
        if kind_of(e).status >= 500 and not isinstance(e, NotReadyError):
            logger.exception("live stream failed")
        code = "too_many_sessions" if isinstance(e, TooManySessionsError) else None
        await fail(websocket, e, code, shape)


def _same(event: dict[str, Any]) -> dict[str, Any]:
    return event
