"""SIGTERM drains: the server stops taking work (/health and new requests answer 503 with
Retry-After), lets requests in flight finish for --shutdown-timeout seconds, then ends what is
left with one error event and `data: [DONE]`.

Environment: E2E_URL, E2E_KEY, E2E_MODEL, E2E_PID (the server, which this test signals),
E2E_SHUTDOWN_TIMEOUT (its --shutdown-timeout). run.sh then checks that the process exits 0."""
import http.client
import json
import os
import signal
import threading
import time
import urllib.parse

URL = urllib.parse.urlparse(os.environ["E2E_URL"])
KEY = os.environ["E2E_KEY"]
MODEL = os.environ["E2E_MODEL"]
PID = int(os.environ["E2E_PID"])
TIMEOUT = float(os.environ["E2E_SHUTDOWN_TIMEOUT"])
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}


def request(method, path, body=None):
    conn = http.client.HTTPConnection(URL.hostname, URL.port, timeout=30)
    conn.request(method, path, json.dumps(body) if body else None, HEADERS)
    resp = conn.getresponse()
    return resp.status, resp.getheader("Retry-After"), resp.read().decode()


def stream(max_tokens, events, started):
    """Reads one streaming chat request to its end; `events` gets each data payload."""
    conn = http.client.HTTPConnection(URL.hostname, URL.port, timeout=60)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a story."}],
            "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    conn.request("POST", "/v1/chat/completions", json.dumps(body), HEADERS)
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    for line in resp:
        line = line.decode().rstrip("\n")
        if line.startswith("data: "):
            events.append((time.monotonic(), line[6:]))
            started.set()


long_events, short_events = [], []
long_started, short_started = threading.Event(), threading.Event()
threads = [threading.Thread(target=stream, args=(2000, long_events, long_started)),
           threading.Thread(target=stream, args=(150, short_events, short_started))]
for t in threads:
    t.start()
assert long_started.wait(30) and short_started.wait(30), "streams did not start"
sigterm_at = time.monotonic()
os.kill(PID, signal.SIGTERM)
time.sleep(0.2)

status, retry, body = request("GET", "/health")
assert status == 503 and retry and json.loads(body)["error"]["type"], (status, retry, body)
status, retry, body = request("POST", "/v1/chat/completions",
                              {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
assert status == 503 and retry and "message" in json.loads(body)["error"], (status, retry, body)

for t in threads:
    t.join(TIMEOUT + 30)
    assert not t.is_alive(), "a stream did not end"

# The short request finished normally inside the drain window.
assert short_events[-1][1] == "[DONE]", short_events[-3:]
assert short_events[-1][0] > sigterm_at, "the short stream ended before SIGTERM: nothing was drained"
finals = [json.loads(d) for _, d in short_events[:-1]]
assert all("error" not in c for c in finals), finals[-2:]
assert finals[-1]["choices"][0]["finish_reason"] == "length", finals[-1]
# The long one was cut at the end of the drain: one error event, then [DONE].
(_, error), (done_at, done) = long_events[-2:]
assert done == "[DONE]" and json.loads(error)["error"]["message"], long_events[-3:]
assert sum("error" in json.loads(d) for _, d in long_events[:-1]) == 1
drained = done_at - sigterm_at
assert TIMEOUT - 0.5 <= drained <= TIMEOUT + 3, f"the long stream ended {drained:.1f} s after SIGTERM"
print(f"  short stream finished during the drain; long stream cut {drained:.1f} s after SIGTERM "
      f"(--shutdown-timeout {TIMEOUT:g}) with an error event and [DONE]")
