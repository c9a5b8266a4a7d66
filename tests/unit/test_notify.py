"""The failure webhook: the JSON message and its delivery to a local HTTP server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from pipeline.ops.notifications import NotificationError, failure_message, post_json


@pytest.fixture
def http_server():
    """127.0.0.1 server answering ``status`` (settable) and recording each request body."""
    state = {"status": 200, "bodies": [], "headers": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            state["bodies"].append(self.rfile.read(int(self.headers["Content-Length"])))
            state["headers"].append(dict(self.headers))
            self.send_response(state["status"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_port}/hooks/pipeline"
    yield state
    server.shutdown()
    server.server_close()


def test_failure_message_has_a_chat_line_and_the_details():
    message = failure_message("retraining", "brave-fox", "1234", "Failed",
                              "DataValidationError: bad.csv: [label_not_null]\nmore detail", "text-classifier",
                              "http://127.0.0.1:4200/runs/flow-run/1234")
    assert message["event"] == "pipeline.run.failed"
    assert message["text"] == ("Pipeline run retraining/brave-fox failed: DataValidationError: bad.csv: [label_not_null] "
                               "<http://127.0.0.1:4200/runs/flow-run/1234>")
    assert message["reason"].endswith("more detail") and message["model_name"] == "text-classifier"
    json.dumps(message)


def test_post_json_delivers_the_message(http_server):
    message = failure_message("training", "calm-owl", "99", "Crashed", "killed", None, None)
    assert post_json(http_server["url"], message) == 200
    assert json.loads(http_server["bodies"][0]) == message
    assert http_server["headers"][0]["Content-Type"] == "application/json"


def test_an_error_status_or_no_server_raises_a_clear_error(http_server):
    http_server["status"] = 500
    with pytest.raises(NotificationError, match="answered 500"):
        post_json(http_server["url"], {"text": "x"})
    with pytest.raises(NotificationError, match="unreachable"):
        post_json("http://127.0.0.1:9/nothing-listens-here", {"text": "x"}, timeout=2)
