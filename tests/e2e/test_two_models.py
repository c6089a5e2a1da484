"""Two models in one `ferrum serve` (a `models:` list in a --config file), through the openai SDK:
routing by name, per-model limits, the listing, the 404 that names what is served, and metrics
labelled per model."""
import os
import sys
import urllib.request

import openai

URL = os.environ["E2E_URL"]
KEY = os.environ["E2E_KEY"]
client = openai.OpenAI(base_url=f"{URL}/v1", api_key=KEY, timeout=180, max_retries=0)


def test_listing_names_both_models_with_their_limits():
    models = {m.id: m for m in client.models.list().data}
    assert {"small", "smollm2-alias", "qwen"} <= set(models), models
    assert models["small"].model_extra["max_model_len"] == 1024, models["small"]
    assert models["qwen"].model_extra["max_model_len"] == 2048, models["qwen"]


def test_requests_go_to_the_model_they_name():
    for name in ["small", "smollm2-alias", "qwen"]:
        r = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "Hello"}], max_tokens=4, temperature=0)
        assert r.model == name, (name, r.model)
        assert r.usage.completion_tokens >= 1, r
    # The two models tokenize differently: the same text gives different prompt lengths.
    a = client.completions.create(model="small", prompt="Bonjour le monde, 你好世界", max_tokens=1)
    b = client.completions.create(model="qwen", prompt="Bonjour le monde, 你好世界", max_tokens=1)
    assert a.usage.prompt_tokens != b.usage.prompt_tokens, (a.usage, b.usage)


def test_each_model_keeps_its_own_context_limit():
    prompt = [100] * 1500
    try:
        client.completions.create(model="small", prompt=prompt, max_tokens=1)
        raise AssertionError("1,500 tokens accepted by a 1,024-token model")
    except openai.BadRequestError as e:
        assert "1024" in str(e), e
    r = client.completions.create(model="qwen", prompt=prompt, max_tokens=1)
    assert r.usage.prompt_tokens == 1500, r.usage


def test_unknown_model_is_a_404_listing_the_served_ones():
    try:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError as e:
        text = str(e)
        assert "gpt-4o" in text and "small" in text and "qwen" in text, text


def test_metrics_are_labelled_per_model():
    req = urllib.request.Request(f"{URL}/metrics", headers={"Authorization": f"Bearer {KEY}"})
    body = urllib.request.urlopen(req, timeout=10).read().decode()
    lines = [l for l in body.splitlines() if l.startswith("vllm:generation_tokens_total{")]
    for name in ["small", "qwen"]:
        mine = [l for l in lines if f'model_name="{name}"' in l]
        assert mine and float(mine[0].rsplit(" ", 1)[1]) > 0, (name, lines)


if __name__ == "__main__":
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                print(f"  ok   {name}")
            except Exception as e:  # noqa: BLE001 - report every failure, then exit non-zero
                failed += 1
                print(f"  FAIL {name}: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)
