"""The error hierarchy shared by the daemons and the keeper."""

from __future__ import annotations


class RbeeError(Exception):
    """Base of every error rbee reports to a user.

    The message is one sentence that names the thing, the value and what to do next.
    `code` is a short machine-readable slug carried in `error` events and HTTP bodies.
    """

    code = "rbee_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequestError(RbeeError):
    """A request or operation failed validation."""

    code = "invalid_request"


class NotFoundError(RbeeError):
    """A job, model, hive or worker does not exist."""

    code = "not_found"


class ModelError(RbeeError):
    """A model is missing, invalid or could not be prepared."""

    code = "model_error"


class WorkerError(RbeeError):
    """A worker failed to start, crashed or broke a stream."""

    code = "worker_error"


class WorkerUnreachableError(WorkerError):
    """No connection to a worker could be opened, so no request reached it."""

    code = "worker_unreachable"


class HiveError(RbeeError):
    """A hive is unreachable or returned an error."""

    code = "hive_error"


class NoCapacityError(RbeeError):
    """No hive or worker can take the request now."""

    code = "no_capacity"


class DaemonError(RbeeError):
    """A local daemon could not be started, reached or stopped."""

    code = "daemon_error"


class ConfigError(RbeeError):
    """A configuration value or file is invalid."""

    code = "config_error"


class QueueFullError(NoCapacityError):
    """Every worker that could serve the request has a full queue; retry later."""

    code = "queue_full"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
