"""What the server's service layer raises. No HTTP here: ``errors.py`` maps these to statuses.

They extend malsori's own hierarchy, so the CLI (``malsori keys``) reports them as one line too.
"""

from __future__ import annotations

from ..errors import AudioDecodeError, InputError, InvalidOptionError, MalsoriError


class ServiceError(MalsoriError):
    """A request the server cannot serve as asked."""

    exit_code = 2


class InvalidParameterError(InvalidOptionError):
    """An invalid request parameter, named in ``param``."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


class AuthenticationError(ServiceError):
    """No API key, or an unknown or revoked one."""


class NotFoundError(ServiceError):
    """Something that does not exist for this caller."""


class JobNotFoundError(NotFoundError):
    """No such job, or a job that another key made."""


class KeyNotFoundError(NotFoundError):
    """No API key with this id."""


class UnknownModelError(NotFoundError):
    """A model id this server does not serve."""


class JobNotFinishedError(ServiceError):
    """A job's result was asked for before the job completed."""


class RetryLaterError(ServiceError):
    """Refused for now; trying again after ``retry_after`` seconds may work."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class QueueFullError(RetryLaterError):
    """Every queue slot is taken."""


class QuotaExceededError(RetryLaterError):
    """The caller's API key already has as much in progress as its quota allows."""


class ModelBusyError(RetryLaterError):
    """A model cannot be loaded or unloaded now: the budget of loaded models is held by work in
    flight, or the model itself is in use."""


class ForbiddenError(ServiceError):
    """A valid API key that may not do this (managing models takes an admin key)."""


class NotReadyError(ServiceError):
    """The model is not loaded or the database cannot be reached."""


class UploadTooLargeError(InputError):
    """The upload is larger than the configured limit."""

    @classmethod
    def for_limit(cls, limit: int) -> UploadTooLargeError:
        return cls(f"upload larger than the limit of {limit} bytes ({limit / 1024 / 1024:.3g} MiB)")


class AudioTooLongError(InputError):
    """The audio lasts longer than the configured limit."""


class NotAudioError(AudioDecodeError):
    """The content does not open as audio at all (as opposed to audio that is corrupt)."""


class TranscriptionCancelled(NotReadyError):
    """A transcription stopped early: its client left, its job was deleted or the server stops."""

    def __init__(self, message: str = "transcription cancelled: the server is stopping"):
        super().__init__(message)
