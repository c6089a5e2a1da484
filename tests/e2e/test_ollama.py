"""The official `ollama` Python client against `ferrum serve`: chat and generate (whole and
streamed), options, list/show/ps, and errors raised as `ollama.ResponseError` with Ollama's
statuses. Installs the client with pip when it is missing."""
import os
import subprocess
import sys

try:
    import ollama
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "ollama"],
                          env={**os.environ, "PIP_BREAK_SYSTEM_PACKAGES": "1"})
    import ollama

import httpx

URL = os.environ["E2E_URL"]
KEY = os.environ["E2E_KEY"]
MODEL = os.environ["E2E_MODEL"]
client = ollama.Client(host=URL, headers={"Authorization": f"Bearer {KEY}"}, timeout=180)
MSGS = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0, "num_predict": 32}


def test_chat():
    r = client.chat(model=MODEL, messages=MSGS, options=GREEDY)
    assert r.message.role == "assistant"
    assert "Paris" in r.message.content, r
    assert r.done and r.done_reason in ("stop", "length")
    assert r.prompt_eval_count > 10 and 0 < r.eval_count <= 32
    assert r.total_duration >= r.prompt_eval_duration > 0 and r.eval_duration >= 0
    assert r.created_at.endswith("Z")


def test_chat_stream_matches_whole():
    whole = client.chat(model=f"{MODEL}:latest", messages=MSGS, options=GREEDY)
    parts = list(client.chat(model=MODEL, messages=MSGS, options=GREEDY, stream=True))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    text = "".join(p.message.content or "" for p in parts)
    assert text == whole.message.content, (text, whole.message.content)
    assert parts[-1].eval_count == whole.eval_count


def test_generate_whole_and_streamed():
    system = "You are a helpful assistant."
    r = client.generate(model=MODEL, prompt="What is the capital of France?", system=system, options=GREEDY)
    assert "Paris" in r.response, r
    assert r.done and r.eval_count > 0
    parts = list(client.generate(model=MODEL, prompt="What is the capital of France?", system=system,
                                 options=GREEDY, stream=True))
    assert "".join(p.response for p in parts) == r.response
    raw = client.generate(model=MODEL, prompt="The capital of France is", raw=True,
                          options={"temperature": 0, "num_predict": 8})
    assert raw.response and raw.done


def test_options():
    r = client.generate(model=MODEL, prompt="Count from one to twenty.",
                        options={"temperature": 0, "num_predict": 5, "num_ctx": 2048, "num_gpu": 1})
    assert r.eval_count == 5 and r.done_reason == "length", r
    seeded = [client.generate(model=MODEL, prompt="Tell me a story.",
                              options={"temperature": 1.0, "top_k": 40, "top_p": 0.9, "min_p": 0.05,
                                       "seed": 7, "num_predict": 12, "repeat_penalty": 1.1,
                                       "presence_penalty": 0.2, "frequency_penalty": 0.2}).response
              for _ in range(2)]
    assert seeded[0] == seeded[1], seeded
    whole = client.generate(model=MODEL, prompt="What is the capital of France?", options=GREEDY).response
    word = whole.split()[2]
    stopped = client.generate(model=MODEL, prompt="What is the capital of France?",
                              options={**GREEDY, "stop": [word]}).response
    assert word not in stopped and whole.startswith(stopped), (word, stopped, whole)


def test_list_show_ps():
    names = [m.model for m in client.list().models]
    assert f"{MODEL}:latest" in names and "default:latest" in names, names
    entry = next(m for m in client.list().models if m.model == f"{MODEL}:latest")
    assert entry.size > 50_000_000 and len(entry.digest) == 64
    assert entry.details.format == "gguf" and entry.details.quantization_level == "Q4_1", entry
    show = client.show(MODEL)
    assert "completion" in show.capabilities and show.details.format == "gguf"
    assert show.details.family == "llama" and show.details.parameter_size == "135M", show.details
    assert show.modelinfo["general.architecture"] == "llama" and "messages" in show.template
    running = [m.model for m in client.ps().models]
    assert f"{MODEL}:latest" in running, running
    assert all(m.context_length == 2048 for m in client.ps().models)


def test_errors():
    for call in (lambda: client.chat(model="no-such-model", messages=MSGS),
                 lambda: client.generate(model="no-such-model", prompt="hi"),
                 lambda: client.show("no-such-model")):
        try:
            call()
            raise AssertionError("an unknown model was accepted")
        except ollama.ResponseError as e:
            assert e.status_code == 404 and "not found" in e.error, (e.status_code, e.error)
    try:
        list(client.chat(model="no-such-model", messages=MSGS, stream=True))
        raise AssertionError("an unknown model was accepted")
    except ollama.ResponseError as e:
        assert e.status_code == 404, e
    for call in (lambda: client.chat(model=MODEL, messages=MSGS, format="json"),
                 lambda: client.generate(model=MODEL, prompt="hi", options={"num_ctx": 1 << 20})):
        try:
            call()
            raise AssertionError("accepted")
        except ollama.ResponseError as e:
            assert e.status_code == 400, (e.status_code, e.error)
    try:
        client.pull(MODEL)
        raise AssertionError("pull pretended to succeed")
    except ollama.ResponseError as e:
        assert e.status_code == 501, e


def test_liveness_and_auth():
    assert httpx.get(URL + "/", headers={"Authorization": f"Bearer {KEY}"}).text == "Ollama is running"
    try:
        ollama.Client(host=URL).list()
        raise AssertionError("no key was accepted")
    except ollama.ResponseError as e:
        assert e.status_code == 401, e
        # Ollama's error body, so the client's message is the text itself, not a dict.
        assert isinstance(e.error, str) and "key" in e.error.lower(), e.error


if __name__ == "__main__":
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                print(f"  ok   {name}")
            except Exception as e:  # report every failure, then fail the run
                failed += 1
                print(f"  FAIL {name}: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)
