"""The access log writes where the server's other log lines go, whatever sys.stdout becomes."""

import io
import json
import logging
import sys

from serving.logs import ACCESS_LOGGER, AccessLog


def test_access_lines_go_to_the_stream_the_log_started_with(monkeypatch):
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    started_with, swapped_in = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", started_with)
    access = AccessLog()
    monkeypatch.setattr(sys, "stdout", swapped_in)  # as pytest does between two tests
    access.log({"path": "/health", "status": 200})
    access.flush()
    [line] = started_with.getvalue().splitlines()
    assert json.loads(line)["path"] == "/health" and json.loads(line)["logger"] == ACCESS_LOGGER
    assert swapped_in.getvalue() == ""
