import io
import json
import logging

import pytest

from config.ops.logs import JsonFormatter, RequestContextFilter


class JsonCapture:
    """Formats records exactly as production does (JSON formatter + context filter) into a buffer."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.handler.addFilter(RequestContextFilter())

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def json_logs():
    capture = JsonCapture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture.handler)
    root.setLevel(logging.INFO)
    yield capture
    root.removeHandler(capture.handler)
    root.setLevel(previous)
