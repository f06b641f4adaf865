"""Question answering with exact citations over a folder of source documents.

The Python API (documented in the README, "Python API"): build an index of a sources folder
and ask it questions, with the same answers the HTTP API gives.

    from qa_service import QAService, Settings
    service = QAService(Settings(sources_dir=Path("sources"), index_dir=Path("index")))
    service.build()
    service.ask("When was the treaty signed?")
"""

from __future__ import annotations

from .config import LIMITS, Limits, Settings
from .embedding import Embedder
from .errors import QAError
from .service import BuildReport, QAService

__all__ = ["LIMITS", "BuildReport", "Embedder", "Limits", "QAError", "QAService", "Settings"]
