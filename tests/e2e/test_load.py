"""100 concurrent streaming requests; 50 connections are killed mid-stream. The others must
finish with [DONE], and the running count and KV usage must be back to idle within 2 s."""
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

URL = urllib.parse.urlparse(os.environ["E2E_URL"])
KEY = os.environ["E2E_KEY"]
MODEL = os.environ["E2E_MODEL"]


def open_stream(max_tokens):
    conn = http.client.HTTPConnection(URL.hostname, URL.port, timeout=300)
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Tell me a long story."}],
                       "max_tokens": max_tokens, "stream": True, "ignore_eos": True})
    conn.request("POST", "/v1/chat/completions", body,
                 {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    return conn, resp


def metrics():
    conn = http.client.HTTPConnection(URL.hostname, URL.port, timeout=10)
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {KEY}"})
    text = conn.getresponse().read().decode()
    values = {}
    for line in text.splitlines():
        for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
            if line.startswith(name + "{"):
                values[name] = float(line.rsplit(" ", 1)[1])
    return values


results = {"done": 0, "killed": 0, "errors": []}
lock = threading.Lock()


def worker(i):
    try:
        conn, resp = open_stream(64 if i % 2 else 400)
        if i % 2 == 0:
            # Read a few events, then drop the connection mid-stream.
            for _ in range(3):
                resp.readline()
            conn.sock.close()
            with lock:
                results["killed"] += 1
            return
        data = resp.read().decode()
        assert data.rstrip().endswith("data: [DONE]"), data[-200:]
        with lock:
            results["done"] += 1
    except Exception as e:  # collected and reported below
        with lock:
            results["errors"].append(f"{i}: {type(e).__name__}: {e}")


threads = [threading.Thread(target=worker, args=(i,)) for i in range(100)]
for t in threads:
    t.start()
for t in threads:
    t.join(600)
print(f"  {results['done']} streams completed, {results['killed']} killed, {len(results['errors'])} errors")
if results["errors"]:
    print("\n".join(results["errors"][:10]))
    sys.exit(1)
deadline = time.time() + 2.0
while True:
    m = metrics()
    idle = m.get("vllm:num_requests_running") == 0 and m.get("vllm:num_requests_waiting") == 0 \
        and m.get("vllm:kv_cache_usage_perc") == 0
    if idle:
        break
    if time.time() > deadline:
        print(f"  not idle 2 s after the last stream: {m}")
        sys.exit(1)
    time.sleep(0.05)
assert results["done"] == 50 and results["killed"] == 50
