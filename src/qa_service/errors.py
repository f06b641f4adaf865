"""Domain errors. Each carries the HTTP status and snake_case code the edge translates it to.

Nothing here imports Flask or click: the web layer and the CLI translate these at the edge.
"""

from __future__ import annotations


class QAError(Exception):
    """Base class: a failure the user can act on, with a message that says how."""

    code = "qa_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(QAError):
    code = "bad_setting"
    status = 500


class BadRequest(QAError):
    code = "bad_request"
    status = 400


class NotFound(QAError):
    code = "not_found"
    status = 404


class IndexNotReady(QAError):
    code = "index_not_ready"
    status = 503


class IndexFormatError(IndexNotReady):
    """The index on disk was built by another format version or model: rebuild it."""

    code = "index_incompatible"


class IndexWriteError(IndexNotReady):
    """The index folder cannot be written (read-only, full disk); the old index still serves."""

    code = "index_write_failed"


class SourceError(QAError):
    """One source file could not be read; builds skip it and report it."""

    code = "source_unreadable"
    status = 422


class BuildRunning(QAError):
    code = "rebuild_running"
    status = 409


class NoSources(QAError):
    code = "no_sources"
    status = 422


class ModelError(QAError):
    """The answer model file cannot be used (missing, damaged, or fitted on other features)."""

    code = "answer_model_error"
    status = 500
