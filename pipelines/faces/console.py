"""The terminal: one rich console per stream, so log lines print above a progress bar
instead of tearing through it."""

from __future__ import annotations

from rich.console import Console

stdout = Console()
stderr = Console(stderr=True)
