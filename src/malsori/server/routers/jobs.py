"""Durable jobs: ``POST /v1/jobs``, ``GET /v1/jobs[/{id}[/result]]``, ``DELETE /v1/jobs/{id}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...writers import get_writer
from ..deps import OwnerDep, ServicesDep
from ..forms import multipart_openapi, parse_params, read_multipart, receive_audio
from ..logs import current_request_id
from ..schemas import JobParams, JobStatus, ResultFormat
from ..speakers import speaker_options

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_FORM_DOC = multipart_openapi(JobParams)
_AFTER = "a job id, the previous page's last_id: list the jobs that come after it"


@router.post("", status_code=202, openapi_extra=_FORM_DOC)
async def create_job(request: Request, services: ServicesDep, owner: OwnerDep) -> JSONResponse:
    """Accept audio for transcription in the background; poll the job or wait for the callback.

    At most ``max_queued_jobs_per_key`` of a key's jobs may be queued or running (429 past it);
    the queue slot is reserved before the upload is decoded."""
    quota = services.quotas.jobs
    stored = await services.call(services.jobs.pending, owner) if quota.limit is not None else 0
    with quota.acquire(owner, elsewhere=stored):
        form = await read_multipart(request, services)
        try:
            params = parse_params(JobParams, form)
            await run_in_threadpool(services.jobs.callback_guard.check, params.callback_url)
            options = services.transcriber.options(params, params.task)
            diarize = await run_in_threadpool(
                speaker_options, params, None, services.transcriber.device
            )
            if diarize is not None:  # speakers are given word by word
                options = options.replace(word_timestamps=True)
            with services.pool.slot() as slot:  # capacity first, then the decoding check
                audio, label = await receive_audio(services, form, owner)
                try:
                    job = await run_in_threadpool(
                        services.jobs.submit,
                        owner,
                        audio,
                        options,
                        slot=slot,
                        filename=label,
                        callback_url=params.callback_url,
                        model=params.model,
                        request_id=current_request_id(),
                        diarize=diarize,
                    )
                except BaseException:
                    services.spool.discard(audio.path)
                    raise
        finally:
            await form.close()
    body = job.to_dict()
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{body['id']}"})


@router.get("")
def list_jobs(
    services: ServicesDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(min_length=1, max_length=64, description=_AFTER)] = None,
    status: JobStatus | None = None,
) -> dict[str, Any]:
    """The caller's own jobs, newest first, a page at a time (OpenAI's list object)."""
    jobs, more = services.jobs.list(owner, limit=limit, status=status, after=after)
    data = [j.to_dict() for j in jobs]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}


@router.get("/{job_id}")
def get_job(job_id: str, services: ServicesDep, owner: OwnerDep) -> dict[str, Any]:
    """Status, progress (percent of the audio decoded) and timings."""
    return services.jobs.get(owner, job_id).to_dict()


@router.get("/{job_id}/result")
def get_result(
    job_id: str, services: ServicesDep, owner: OwnerDep, format: ResultFormat = "json"
) -> Response:
    """The transcript of a completed job, written by the same writers as the CLI."""
    writer = get_writer(format)
    transcript = services.jobs.result(owner, job_id)
    return Response(writer.render(transcript), media_type=writer.media_type)


@router.delete("/{job_id}")
def delete_job(job_id: str, services: ServicesDep, owner: OwnerDep) -> dict[str, Any]:
    """Cancel a queued or running job, or remove a finished one, with its audio and result."""
    services.jobs.delete(owner, job_id)
    return {"id": job_id, "object": "job.deleted", "deleted": True}
