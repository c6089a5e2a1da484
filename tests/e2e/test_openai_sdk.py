"""The official openai Python SDK against `ferrum serve`: chat, completions, streaming, n,
logprobs, usage, and errors raised as the SDK's own exception types."""
import os
import sys

import openai
from openai import OpenAI

URL = os.environ["E2E_URL"] + "/v1"
KEY = os.environ["E2E_KEY"]
MODEL = os.environ["E2E_MODEL"]
client = OpenAI(base_url=URL, api_key=KEY, timeout=180, max_retries=0)
MSGS = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"}]


def test_chat():
    r = client.chat.completions.create(model=MODEL, messages=MSGS, temperature=0, max_tokens=32)
    assert "Paris" in r.choices[0].message.content, r
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 10 and r.usage.completion_tokens > 0
    assert r.usage.prompt_tokens_details.cached_tokens >= 0


def test_chat_stream_matches_whole():
    whole = client.chat.completions.create(model=MODEL, messages=MSGS, temperature=0, max_tokens=24)
    text, usage, finish = "", None, None
    for chunk in client.chat.completions.create(model=MODEL, messages=MSGS, temperature=0, max_tokens=24,
                                                stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == whole.choices[0].message.content, (text, whole)
    assert usage and usage.completion_tokens == whole.usage.completion_tokens
    assert finish in ("stop", "length")


def test_n_and_seed_and_logprobs():
    r = client.chat.completions.create(model=MODEL, messages=MSGS, n=3, seed=1, temperature=1.0, max_tokens=8,
                                       logprobs=True, top_logprobs=2)
    assert [c.index for c in r.choices] == [0, 1, 2]
    for c in r.choices:
        assert c.logprobs.content and len(c.logprobs.content[0].top_logprobs) == 2
    again = client.chat.completions.create(model=MODEL, messages=MSGS, n=3, seed=1, temperature=1.0, max_tokens=8)
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]


def test_completions():
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=5, temperature=0)
    assert r.choices[0].text and r.usage.completion_tokens <= 5
    r = client.completions.create(model=MODEL, prompt=["One", "Two"], max_tokens=3, temperature=0, logprobs=2)
    assert len(r.choices) == 2 and r.choices[1].logprobs.tokens
    ids = client.post("/../tokenize", body={"prompt": "The capital of France is"}, cast_to=object)
    r = client.completions.create(model=MODEL, prompt=ids["tokens"], max_tokens=3, temperature=0)
    assert r.choices[0].text
    text = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="Hello", max_tokens=6, temperature=0, stream=True))
    assert text


def test_stop_string():
    r = client.chat.completions.create(model=MODEL, messages=MSGS, temperature=0, max_tokens=32, stop=["Paris"])
    assert "Paris" not in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"


def expect(exc, **kw):
    try:
        client.chat.completions.create(**kw)
    except exc as e:
        body = e.body if isinstance(e.body, dict) else {}
        assert "message" in body, body
        return e
    raise AssertionError(f"expected {exc.__name__}")


def test_errors_are_sdk_exceptions():
    expect(openai.NotFoundError, model="no-such-model", messages=MSGS)
    expect(openai.BadRequestError, model=MODEL, messages=[])
    e = expect(openai.BadRequestError, model=MODEL, messages=MSGS, max_tokens=100000)
    assert "2048" in str(e)
    expect(openai.BadRequestError, model=MODEL, messages=MSGS, temperature=5)
    expect(openai.BadRequestError, model=MODEL, messages=MSGS, response_format={"type": "json_object"})
    bad = OpenAI(base_url=URL, api_key="wrong", max_retries=0)
    try:
        bad.models.list()
        raise AssertionError("expected 401")
    except openai.AuthenticationError:
        pass


def test_models():
    ids = [m.id for m in client.models.list().data]
    assert ids == [MODEL, "default"], ids


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
