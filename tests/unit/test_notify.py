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
    message = failure_message(
        "retraining",
        "brave-fox",
        "1234",
        "Failed",
        "DataValidationError: bad.csv: [label_not_null]\nmore detail",
        "text-classifier",
        "http://127.0.0.1:4200/runs/flow-run/1234",
    )
    assert message["event"] == "pipeline.run.failed"
    assert message["text"] == (
        "Pipeline run retraining/brave-fox failed: DataValidationError: bad.csv: [label_not_null] "
        "<http://127.0.0.1:4200/runs/flow-run/1234>"
    )
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


def _raw_server(respond):
    """127.0.0.1 socket server whose connection handler is ``respond(connection)``; returns (url, close)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=respond, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/services/T000/B000/SECRET-TOKEN-123", listener.close


def test_a_trickling_server_is_cut_at_the_total_deadline():
    import time

    def trickle(connection):
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(40):  # one header byte every 0.5 s: each read is quick, the whole answer is not
            time.sleep(0.5)
            try:
                connection.sendall(b"X")
            except OSError:
                return

    url, close = _raw_server(trickle)
    started = time.monotonic()
    with pytest.raises(NotificationError, match="did not answer within 2 s") as caught:
        post_json(url, {"text": "x"}, timeout=2)
    assert time.monotonic() - started < 4
    assert "SECRET-TOKEN-123" not in str(caught.value)
    close()


def test_a_malformed_status_line_is_a_notification_error_without_the_secret():
    def garbage(connection):
        connection.recv(65536)
        connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        connection.close()

    url, close = _raw_server(garbage)
    with pytest.raises(NotificationError, match="unreachable") as caught:
        post_json(url, {"text": "x"}, timeout=5)
    assert "SECRET-TOKEN-123" not in str(caught.value) and "127.0.0.1" in str(caught.value)
    close()


def test_redirects_are_not_followed(http_server):
    def redirect(connection):
        connection.recv(65536)
        connection.sendall(
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {http_server['url']}\r\nContent-Length: 0\r\n\r\n".encode()
        )
        connection.close()

    url, close = _raw_server(redirect)
    with pytest.raises(NotificationError, match="answered 307") as caught:
        post_json(url, {"text": "x"}, timeout=5)
    assert http_server["bodies"] == [], "the message must not reach the redirect target"
    assert "SECRET-TOKEN-123" not in str(caught.value)
    close()
