"""Two `ferrum serve` replicas behind nginx (deploy/nginx/nginx.conf): kill one, drain the other.

Usage: failover.py FERRUM_BIN MODEL NGINX_CONF_TEMPLATE WORKDIR

Starts both replicas on loopback with deploy/config/vllm_config.json (so the example config is
read for real; the command line overrides what a 135M CPU model needs), renders the test
variant of nginx.conf (only addresses, listen port and log paths change) and runs Debian's
nginx with it. Four clients send chat requests (half streamed) through nginx; both replicas
must serve some. Then:
1. Replica 1 gets SIGKILL. Every request started after its death succeeds, also past nginx's
   fail_timeout (when nginx tries the dead replica again); the survivor served them and still
   answers directly.
2. Replica 1 is started again and nginx takes it back. Replica 2 gets SIGTERM while it streams:
   it answers new requests with 503 while draining, nginx retries those on replica 1 (seen in
   the access log), every request through nginx succeeds, and replica 2 exits 0.
"""

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

BIN, MODEL, CONF_TEMPLATE, WORK = sys.argv[1:5]
BASE = int(os.environ.get("FERRUM_DEPLOY_PORT", "18530"))
NGINX_PORT, PORTS = BASE, (BASE + 1, BASE + 2)
CLIENTS = 4
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "deploy", "config", "vllm_config.json")
# nginx marks a failed replica down for this long (fail_timeout in nginx.conf); the load after
# the kill runs past it so that nginx's second attempt at the dead replica is covered too.
FAIL_TIMEOUT_S = 10
children = []


def die_with_parent():
    # The children must not outlive this script, even when it is killed.
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(args, log, env=None):
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                         preexec_fn=die_with_parent)
    children.append(p)
    return p


def start_replica(port):
    """As the compose service runs it: the model from MODEL_NAME, address and port from the
    environment (the image sets FERRUM_HOST/FERRUM_PORT), `--config` from the command; the
    command line adds only what a 135M model on one CPU thread needs."""
    log = open(os.path.join(WORK, f"ferrum-{port}.log"), "ab")
    env = {**os.environ, "MODEL_NAME": MODEL, "FERRUM_HOST": "127.0.0.1", "FERRUM_PORT": str(port)}
    return spawn(
        [BIN, "serve", "--config", CONFIG,
         "--served-model-name", "smollm2", "--max-model-len", "1024",
         "--kv-cache-memory-bytes", "64M", "--threads", "1", "--shutdown-timeout", "2"],
        log, env,
    )


def render_nginx_conf():
    text = open(CONF_TEMPLATE).read()
    subs = [
        (r"server ferrum-1:8000", f"server 127.0.0.1:{PORTS[0]}"),
        (r"server ferrum-2:8000", f"server 127.0.0.1:{PORTS[1]}"),
        (r"listen 80;", f"listen 127.0.0.1:{NGINX_PORT};"),
        (r"/var/log/nginx/", WORK + "/"),
    ]
    for pattern, repl in subs:
        text, n = re.subn(re.escape(pattern), repl, text)
        assert n == 1, f"nginx.conf: expected one {pattern!r}, found {n}"
    assert f"fail_timeout={FAIL_TIMEOUT_S}s" in text, "nginx.conf fail_timeout changed: update the test"
    path = os.path.join(WORK, "nginx.conf")
    open(path, "w").write(text)
    return path


def http(method, url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_healthy(url, proc, what):
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} not healthy at {url}")


def successes(port):
    """vllm:request_success_total summed over reasons, from the replica's /metrics."""
    _, text = http("GET", f"http://127.0.0.1:{port}/metrics")
    return sum(float(m.group(1)) for m in
               re.finditer(r"^vllm:request_success_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


def one_request(url, stream, max_tokens=6):
    body = {"model": "smollm2", "max_tokens": max_tokens, "temperature": 0, "stream": stream,
            "messages": [{"role": "user", "content": "Name a colour."}]}
    status, text = http("POST", url, body)
    if status != 200:
        return f"status {status}"
    if stream:
        events = [l[6:] for l in text.splitlines() if l.startswith("data: ")]
        if not events or events[-1] != "[DONE]":
            return "stream without [DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        if any("error" in c for c in chunks):
            return "error event in stream"
        if not any(c["choices"] and c["choices"][0].get("finish_reason") for c in chunks):
            return "stream without finish_reason"
    else:
        reply = json.loads(text)
        if reply["choices"][0]["finish_reason"] not in ("stop", "length"):
            return f"finish_reason {reply['choices'][0]['finish_reason']}"
    return None


def load(url, until, results):
    """Sends requests back to back until `until`; records (start, error or None)."""
    i = 0
    while time.monotonic() < until:
        start = time.monotonic()
        try:
            err = one_request(url, stream=i % 2 == 1)
        except Exception as e:  # noqa: BLE001 - every failure is a result to report
            err = f"{type(e).__name__}: {e}"
        results.append((start, err))
        i += 1


def run_load(url, seconds):
    results, until = [], time.monotonic() + seconds
    threads = [threading.Thread(target=load, args=(url, until, results)) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    return threads, results


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def main():
    replicas = [start_replica(p) for p in PORTS]
    conf = render_nginx_conf()
    check = subprocess.run(["nginx", "-t", "-p", WORK, "-c", conf, "-g", f"pid {WORK}/nginx.pid;"],
                           capture_output=True, text=True)
    assert check.returncode == 0, f"nginx -t failed:\n{check.stderr}"
    spawn(["nginx", "-p", WORK, "-c", conf, "-g",
           f"daemon off; pid {WORK}/nginx.pid; error_log {WORK}/error.log;"],
          open(os.path.join(WORK, "nginx.out"), "wb"))
    for port, proc in zip(PORTS, replicas):
        wait_healthy(f"http://127.0.0.1:{port}/health", proc, f"replica on {port}")
    front = f"http://127.0.0.1:{NGINX_PORT}"
    wait_healthy(front + "/nginx-health", children[-1], "nginx")
    url = front + "/v1/chat/completions"

    # 1. Both replicas serve through nginx.
    threads, before = run_load(url, 3)
    for t in threads:
        t.join()
    bad = [e for _, e in before if e]
    assert not bad, f"failures before the kill: {bad[:5]}"
    served = [successes(p) for p in PORTS]
    assert all(s > 0 for s in served), f"nginx did not use both replicas: {served}"
    print(f"before the kill: {len(before)} requests ok, per replica {served}")

    # 2. Kill replica 1 while the clients are running.
    threads, during = run_load(url, 2.5 + FAIL_TIMEOUT_S)
    time.sleep(1.5)
    replicas[0].kill()
    replicas[0].wait()
    killed_at = time.monotonic()
    assert refused(PORTS[0]), "the killed replica's port still accepts connections"
    survivor_before = successes(PORTS[1])
    for t in threads:
        t.join()
    after = [(s, e) for s, e in during if s >= killed_at]
    in_flight = [e for s, e in during if s < killed_at and e]
    failed = [e for _, e in after if e]
    assert len(after) >= 20, f"too few requests after the kill: {len(after)}"
    assert not failed, f"{len(failed)} of {len(after)} requests after the kill failed: {failed[:5]}"
    print(f"after the kill: {len(after)} requests ok (streamed and not) over {FAIL_TIMEOUT_S + 1} s; "
          f"{len(in_flight)} in flight at the kill failed")

    # 3. The survivor did the work and keeps serving.
    survivor_after = successes(PORTS[1])
    assert survivor_after - survivor_before >= len(after) - CLIENTS, \
        f"survivor served {survivor_after - survivor_before}, clients saw {len(after)}"
    assert one_request(f"http://127.0.0.1:{PORTS[1]}/v1/chat/completions", stream=False) is None
    assert http("GET", f"http://127.0.0.1:{PORTS[1]}/health")[0] == 200
    assert one_request(url, stream=True) is None
    print("survivor healthy and serving directly and through nginx")

    # 4. Replica 1 comes back; nginx takes it back once its fail_timeout has passed.
    replicas[0] = start_replica(PORTS[0])
    wait_healthy(f"http://127.0.0.1:{PORTS[0]}/health", replicas[0], "restarted replica")
    deadline = time.monotonic() + FAIL_TIMEOUT_S + 5
    while successes(PORTS[0]) == 0:
        assert time.monotonic() < deadline, "nginx never sent a request to the restarted replica"
        assert one_request(url, stream=False) is None
        time.sleep(0.2)

    # 5. Drain replica 2 (SIGTERM) while it streams long answers and the clients keep going.
    long_streams = [threading.Thread(target=lambda: one_request(
        f"http://127.0.0.1:{PORTS[1]}/v1/chat/completions", stream=True, max_tokens=900))
        for _ in range(2)]
    for t in long_streams:
        t.start()
    time.sleep(0.5)
    retried_before = retried_503()
    threads, during = run_load(url, 3)
    time.sleep(0.3)
    replicas[1].send_signal(signal.SIGTERM)
    for t in threads:
        t.join()
    code = replicas[1].wait(timeout=30)
    for t in long_streams:
        t.join()
    failed = [e for _, e in during if e]
    assert not failed, f"{len(failed)} of {len(during)} requests failed during the drain: {failed[:5]}"
    assert code == 0, f"drained replica exited with {code}"
    retried = retried_503() - retried_before
    assert retried >= 1, "no request met the draining replica's 503 (nothing was retried)"
    print(f"drain: {len(during)} requests ok, {retried} answered 503 by the draining replica "
          f"and retried on the other; it exited 0")


def retried_503():
    """Requests that a replica answered 503 and nginx passed on to the other."""
    log = open(os.path.join(WORK, "access.log")).read()
    return len(re.findall(r"upstream_status=503, 200", log))


try:
    main()
finally:
    for c in children:
        if c.poll() is None:
            c.terminate()
    for c in children:
        try:
            c.wait(timeout=10)
        except subprocess.TimeoutExpired:
            c.kill()
