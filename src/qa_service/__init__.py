"""Question answering with exact citations over a folder of source documents."""

from __future__ import annotations

from .config import Settings
from .errors import QAError
from .service import QAService

__all__ = ["QAService", "QAError", "Settings"]
