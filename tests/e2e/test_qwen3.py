"""The official openai Python SDK against `ferrum serve` on a random-weight Qwen3 model (real Qwen
vocabulary, the generator's ChatML template) started with `--reasoning-parser qwen3
--enable-auto-tool-choice --tool-call-parser hermes`.

Random weights give arbitrary text, so most checks are on structure. Where a check needs a
particular output (the reasoning split, a tool call), the output is forced: every wanted token
gets a logit bias, decreasing along the sequence (100 down to 25), and
`repetition_penalty=10` divides the logit of each token already seen, so greedy decoding emits
the wanted tokens once each, in order. That holds while the wanted tokens are distinct and absent
from the prompt (both asserted) and the model's own logits differ by less than the bias step:
forced sequences are kept to at most 13 tokens, where, on the generator's seed-0 weights, the
wanted token leads the runner-up by at least 3.5 logits at every step (measured with
top_logprobs), far above any numerical drift.

Environment: E2E_URL, E2E_KEY, E2E_MODEL (server with the model's template), E2E_MODEL_DIR
(the model folder, for its tokenizer_config.json) and E2E_BARE_URL (the same model served with
a template that renders only message contents, so that a forced tool call's tokens are not in
the prompt)."""
import json
import os
import sys

import openai
from jinja2.sandbox import ImmutableSandboxedEnvironment
from openai import OpenAI

URL = os.environ["E2E_URL"]
KEY = os.environ["E2E_KEY"]
MODEL = os.environ["E2E_MODEL"]
MODEL_DIR = os.environ["E2E_MODEL_DIR"]
client = OpenAI(base_url=URL + "/v1", api_key=KEY, timeout=60, max_retries=0)
bare = OpenAI(base_url=os.environ["E2E_BARE_URL"] + "/v1", api_key=KEY, timeout=60, max_retries=0)
MSGS = [{"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?"}]
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city (°C).",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
EOS = 151643  # <|endoftext|>, one of the model's EOS ids (generation_config.json); <|im_end|> is in prompts


def post(c, path, body):
    """POST to a route outside /v1 (vLLM's /tokenize, /detokenize) through the SDK's client."""
    return c.post("/.." + path, body=body, cast_to=object)


def tokenize(text, c=client):
    return post(c, "/tokenize", {"prompt": text, "add_special_tokens": False})["tokens"]


def forced_bias(c, wanted, prompt_ids):
    """logit_bias that makes greedy decoding with repetition_penalty=10 emit `wanted` in order:
    biases from 100 down to 25, as far apart as the number of tokens allows."""
    ids = [i for piece in wanted for i in (tokenize(piece, c) if isinstance(piece, str) else [piece])]
    assert len(set(ids)) == len(ids), f"forced tokens repeat: {ids}"
    assert len(ids) <= 13, f"{len(ids)} forced tokens: over 13 the biases come too close together"
    assert not set(ids) & set(prompt_ids), f"forced tokens {set(ids) & set(prompt_ids)} are in the prompt"
    step = min(20.0, 75.0 / max(1, len(ids) - 1))
    return ids, {str(t): 100.0 - step * k for k, t in enumerate(ids)}


def test_models():
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL], models
    assert models[0].model_extra["max_model_len"] == 4096


def test_chat_structure():
    r = client.chat.completions.create(model=MODEL, messages=MSGS, temperature=0, max_tokens=12)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == MODEL
    (c,) = r.choices
    assert c.index == 0 and c.message.role == "assistant"
    assert c.finish_reason in ("stop", "length")
    assert isinstance(c.message.content, str)
    u = r.usage
    assert 0 < u.completion_tokens <= 12 and u.total_tokens == u.prompt_tokens + u.completion_tokens
    prompt = post(client, "/tokenize", {"model": MODEL, "messages": MSGS})
    assert u.prompt_tokens == prompt["count"], (u, prompt["count"])
    again = client.chat.completions.create(model=MODEL, messages=MSGS, temperature=0, max_tokens=12)
    assert again.choices[0].message.content == c.message.content, "greedy decoding is not repeatable"
    r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=6, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 6 and r.choices[0].finish_reason == "length"


def test_stream_matches_whole():
    kw = dict(model=MODEL, messages=MSGS, temperature=0, max_tokens=16, extra_body={"ignore_eos": True})
    whole = client.chat.completions.create(**kw)
    content, reasoning, roles, usage, finish, ids = "", "", [], None, [], set()
    for chunk in client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw):
        ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage:
            assert chunk.choices == []
            usage = chunk.usage
        for c in chunk.choices:
            assert c.index == 0
            content += c.delta.content or ""
            reasoning += (c.delta.model_extra or {}).get("reasoning_content") or ""
            roles += [c.delta.role] if c.delta.role else []
            finish += [c.finish_reason] if c.finish_reason else []
    assert len(ids) == 1 and roles == ["assistant"] and finish == ["length"], (ids, roles, finish)
    m = whole.choices[0].message
    assert content == (m.content or "") and reasoning == (m.model_extra.get("reasoning_content") or "")
    assert usage.completion_tokens == 16 == whole.usage.completion_tokens


def test_n_seed_logprobs():
    kw = dict(model=MODEL, messages=MSGS, n=3, seed=7, temperature=1.0, max_tokens=6,
              extra_body={"ignore_eos": True})
    r = client.chat.completions.create(logprobs=True, top_logprobs=3, **kw)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens == 18
    for c in r.choices:
        lp = c.logprobs.content
        assert len(lp) == 6
        for t in lp:
            tops = [x.logprob for x in t.top_logprobs]
            assert len(tops) == 3 and tops == sorted(tops, reverse=True) and all(x <= 0 for x in tops)
            assert t.logprob <= 0 and bytes(t.bytes).decode("utf-8", "replace") == t.token
    again = client.chat.completions.create(**kw)
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]


def test_detokenization_matches_python_utf8():
    """Random tokens of Qwen's byte-level vocabulary split characters and leave invalid bytes: the
    text (whole and streamed) must equal Python's UTF-8 decoding, with replacement, of the
    generated tokens' bytes."""
    kw = dict(model=MODEL, messages=MSGS, temperature=1.5, seed=4, max_tokens=150, extra_body={"ignore_eos": True})
    c = client.chat.completions.create(logprobs=True, **kw).choices[0]
    want = b"".join(bytes(t.bytes) for t in c.logprobs.content).decode("utf-8", "replace")
    assert c.message.content == want, (c.message.content, want)
    assert any(ord(ch) > 0x2e80 for ch in want) and "\ufffd" in want, "this seed's text no longer has CJK " \
        "characters and invalid bytes: pick another seed so that the check covers both"
    streamed = "".join(ch.choices[0].delta.content or "" for ch in client.chat.completions.create(stream=True, **kw)
                       if ch.choices)
    assert streamed == want


def test_completions():
    r = client.completions.create(model=MODEL, prompt="The weather in Paris is", max_tokens=5, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.object == "text_completion" and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5 and r.usage.prompt_tokens == len(tokenize("The weather in Paris is"))
    r = client.completions.create(model=MODEL, prompt=["One", "Two three"], max_tokens=3, temperature=0,
                                  logprobs=2, extra_body={"ignore_eos": True})
    assert [c.index for c in r.choices] == [0, 1]
    for c in r.choices:
        assert len(c.logprobs.tokens) == 3 and len(c.logprobs.token_logprobs) == 3
        assert all(len(top) == 2 for top in c.logprobs.top_logprobs)
    ids = tokenize("The weather in Paris is")
    r = client.completions.create(model=MODEL, prompt=ids, max_tokens=5, temperature=0,
                                  extra_body={"ignore_eos": True})
    first = r.choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="The weather in Paris is", max_tokens=5, temperature=0, stream=True,
        extra_body={"ignore_eos": True}))
    assert streamed == first, (streamed, first)


def expected_prompt(messages, tools=None, thinking=None, generation_prompt=True):
    """The generator's Qwen3 ChatML template, written out by hand (tojson as Python's json.dumps,
    which is what transformers renders with)."""
    out = ""
    rest = messages
    if tools:
        out += "<|im_start|>system\n"
        if messages[0]["role"] == "system":
            out += messages[0]["content"] + "\n\n"
        out += "# Tools\n\nYou can call these functions; their signatures are inside <tools></tools>:\n<tools>"
        out += "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tools)
        out += ("\n</tools>\n\nTo call one, answer with a JSON object inside <tool_call></tool_call>:\n"
                "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n")
    elif messages[0]["role"] == "system":
        out += "<|im_start|>system\n" + messages[0]["content"] + "<|im_end|>\n"
    if messages[0]["role"] == "system":
        rest = messages[1:]
    for m in rest:
        if m["role"] == "tool":
            out += "<|im_start|>user\n<tool_response>\n" + m["content"] + "\n</tool_response><|im_end|>\n"
        elif m["role"] == "assistant" and m.get("tool_calls"):
            out += "<|im_start|>assistant" + ("\n" + m["content"] if m.get("content") else "")
            for call in m["tool_calls"]:
                f = call["function"]
                args = json.dumps(json.loads(f["arguments"]), ensure_ascii=False)
                out += "\n<tool_call>\n{\"name\": \"" + f["name"] + "\", \"arguments\": " + args + "}\n</tool_call>"
            out += "<|im_end|>\n"
        else:
            out += "<|im_start|>" + m["role"] + "\n" + (m.get("content") or "") + "<|im_end|>\n"
    if generation_prompt:
        out += "<|im_start|>assistant\n"
        if thinking is False:
            out += "<think>\n\n</think>\n\n"
    return out


def jinja_prompt(messages, tools=None, kwargs=None, generation_prompt=True):
    """The model's own chat_template rendered by Jinja2 the way transformers does."""
    with open(os.path.join(MODEL_DIR, "tokenizer_config.json")) as f:
        template = json.load(f)["chat_template"]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
    msgs = json.loads(json.dumps(messages))
    for m in msgs:  # transformers-era templates get arguments as objects (vLLM parses them too)
        for call in m.get("tool_calls") or []:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return env.from_string(template).render(messages=msgs, tools=tools, add_generation_prompt=generation_prompt,
                                            **(kwargs or {}))


def check_rendering(messages, tools=None, kwargs=None, generation_prompt=True):
    body = {"model": MODEL, "messages": messages, "add_generation_prompt": generation_prompt}
    if tools:
        body["tools"] = tools
    if kwargs is not None:
        body["chat_template_kwargs"] = kwargs
    got = post(client, "/tokenize", body)
    text = post(client, "/detokenize", {"model": MODEL, "tokens": got["tokens"]})["prompt"]
    want = expected_prompt(messages, tools, (kwargs or {}).get("enable_thinking"), generation_prompt)
    assert text == want, f"rendered:\n{text!r}\nexpected:\n{want!r}"
    rendered = jinja_prompt(messages, tools, kwargs, generation_prompt)
    assert rendered == want, f"jinja2:\n{rendered!r}\nexpected:\n{want!r}"
    # The text tokenizes back to the same ids (special tokens parsed, no BOS for Qwen).
    assert tokenize(want) == got["tokens"] and got["count"] == len(got["tokens"])
    assert got["max_model_len"] == 4096
    return got["tokens"]


def test_tokenize_renders_the_chat_template():
    ids = check_rendering(MSGS, [TOOL], {"enable_thinking": False})
    assert ids[-6:] == tokenize("<|im_start|>assistant\n<think>\n\n</think>\n\n")[-6:]
    check_rendering(MSGS, [TOOL])
    check_rendering(MSGS, None, {"enable_thinking": True})
    check_rendering(MSGS[1:], None, {"enable_thinking": False}, generation_prompt=False)
    check_rendering([{"role": "user", "content": "巴黎的天气怎么样？"}], [TOOL])
    turns = MSGS + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"°C\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"},
    ]
    check_rendering(turns, [TOOL], {"enable_thinking": False})


def test_enable_thinking_false_reaches_generation():
    plain = post(client, "/tokenize", {"model": MODEL, "messages": MSGS})["count"]
    r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=1,
                                       extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert r.usage.prompt_tokens == plain + len(tokenize("<think>\n\n</think>\n\n")), (r.usage, plain)


def test_reasoning_is_split():
    prompt = post(client, "/tokenize", {"model": MODEL, "messages": MSGS})["tokens"]
    ids, bias = forced_bias(client, ["<think>", " Hmm", "</think>", "Sunny", EOS], prompt)
    kw = dict(model=MODEL, messages=MSGS, temperature=0, max_tokens=10, logit_bias=bias,
              extra_body={"repetition_penalty": 10})
    r = client.chat.completions.create(**kw)
    m = r.choices[0].message
    assert r.usage.completion_tokens == len(ids) and r.choices[0].finish_reason == "stop", r
    assert (m.model_extra["reasoning_content"], m.model_extra["reasoning"], m.content) == (" Hmm", " Hmm", "Sunny"), m
    reasoning, content, reasoning_alias = "", "", ""
    for chunk in client.chat.completions.create(stream=True, **kw):
        for c in chunk.choices:
            reasoning += (c.delta.model_extra or {}).get("reasoning_content") or ""
            reasoning_alias += (c.delta.model_extra or {}).get("reasoning") or ""
            content += c.delta.content or ""
            assert "<think>" not in (c.delta.content or "") + reasoning
    assert (reasoning, reasoning_alias, content) == (" Hmm", " Hmm", "Sunny")
    # Without an opening <think>, a closing tag is plain content for the qwen3 parser.
    ids, bias = forced_bias(client, ["Sunny", "</think>", EOS], prompt)
    r = client.chat.completions.create(model=MODEL, messages=MSGS, temperature=0, max_tokens=10, logit_bias=bias,
                                       extra_body={"repetition_penalty": 10})
    m = r.choices[0].message
    assert m.content == "Sunny</think>" and not m.model_extra.get("reasoning_content"), m


def test_reasoning_opened_by_the_prompt():
    """Thinking-only templates (Qwen3-*-Thinking-2507) end the prompt with `<think>`: the output
    is reasoning up to `</think>` without an opening tag of its own (vLLM's qwen3 parser too)."""
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    opened = {"open_think": True}
    prompt = post(bare, "/tokenize", {"model": MODEL, "messages": msgs, "chat_template_kwargs": opened})["tokens"]
    assert prompt[-1] == tokenize("<think>", bare)[-1], prompt
    ids, bias = forced_bias(bare, [" Hmm", "</think>", "Sunny", EOS], prompt)
    kw = dict(model=MODEL, messages=msgs, temperature=0, max_tokens=10, logit_bias=bias,
              extra_body={"repetition_penalty": 10, "chat_template_kwargs": opened})
    m = bare.chat.completions.create(**kw).choices[0].message
    assert (m.model_extra["reasoning_content"], m.content) == (" Hmm", "Sunny"), m
    reasoning, content = "", ""
    for chunk in bare.chat.completions.create(stream=True, **kw):
        for c in chunk.choices:
            reasoning += (c.delta.model_extra or {}).get("reasoning_content") or ""
            content += c.delta.content or ""
    assert (reasoning, content) == (" Hmm", "Sunny"), (reasoning, content)
    # The same output after a prompt that did not open the block is content.
    kw["extra_body"]["chat_template_kwargs"] = {}
    m = bare.chat.completions.create(**kw).choices[0].message
    assert m.content == " Hmm</think>Sunny" and not m.model_extra.get("reasoning_content"), m


def test_tool_requests_accepted():
    for choice in (None, "auto", "none"):
        kw = {"tool_choice": choice} if choice else {}
        r = client.chat.completions.create(model=MODEL, messages=MSGS, tools=[TOOL], max_tokens=8, **kw)
        c = r.choices[0]
        assert c.finish_reason in ("stop", "length", "tool_calls") and c.message.role == "assistant"
        for call in c.message.tool_calls or []:
            json.loads(call.function.arguments)
    stream = client.chat.completions.create(model=MODEL, messages=MSGS, tools=[TOOL], max_tokens=8, stream=True)
    assert sum(1 for _ in stream) >= 2


def test_forced_tool_call():
    """A hermes tool call made of Qwen's real `<tool_call>` tokens, whole in one streamed chunk."""
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    prompt = post(bare, "/tokenize", {"model": MODEL, "messages": msgs, "tools": [TOOL]})["tokens"]
    # Few tokens keep the forced biases far apart; non-empty arguments would need more (and
    # `{"city":"Paris"}` repeats `":"`). Argument pass-through is tested in ferrum-server's API tests.
    wanted = ['<tool_call>{"name":"get_weather","arguments":{}}</tool_call>', EOS]
    ids, bias = forced_bias(bare, wanted, prompt)
    kw = dict(model=MODEL, messages=msgs, tools=[TOOL], temperature=0, max_tokens=20, logit_bias=bias,
              extra_body={"repetition_penalty": 10})
    r = bare.chat.completions.create(**kw)
    c = r.choices[0]
    assert r.usage.completion_tokens == len(ids), r
    assert c.finish_reason == "tool_calls" and not c.message.content, c
    (call,) = c.message.tool_calls
    assert call.type == "function" and call.id and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {}
    calls, finish = [], []
    for chunk in bare.chat.completions.create(stream=True, **kw):
        for ch in chunk.choices:
            calls += ch.delta.tool_calls or []
            finish += [ch.finish_reason] if ch.finish_reason else []
            assert not ch.delta.content, ch.delta
    assert finish == ["tool_calls"] and len(calls) == 1, (finish, calls)
    assert calls[0].index == 0 and calls[0].id and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {}


def test_forced_reasoning_then_text_then_tool_call():
    """Reasoning, then text, then a call: each goes to its own field, in that order when streamed."""
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    prompt = post(bare, "/tokenize", {"model": MODEL, "messages": msgs, "tools": [TOOL]})["tokens"]
    # The call ends at EOS without `</tool_call>` (the hermes parser keeps a complete call cut off
    # by the end of the output), which saves forced tokens.
    wanted = ["<think>", " Hmm", "</think>", "Sure", '<tool_call>{"name":"get_weather"}', EOS]
    ids, bias = forced_bias(bare, wanted, prompt)
    kw = dict(model=MODEL, messages=msgs, tools=[TOOL], temperature=0, max_tokens=30, logit_bias=bias,
              extra_body={"repetition_penalty": 10})
    r = bare.chat.completions.create(**kw)
    c = r.choices[0]
    assert r.usage.completion_tokens == len(ids), r
    assert (c.message.model_extra["reasoning_content"], c.message.content) == (" Hmm", "Sure"), c
    assert c.finish_reason == "tool_calls" and [t.function.name for t in c.message.tool_calls] == ["get_weather"]
    order = []
    for chunk in bare.chat.completions.create(stream=True, **kw):
        for ch in chunk.choices:
            d = ch.delta
            for field, present in (("reasoning", (d.model_extra or {}).get("reasoning_content")),
                                   ("content", d.content), ("tool_call", d.tool_calls)):
                if present and (not order or order[-1] != field):
                    order.append(field)
    assert order == ["reasoning", "content", "tool_call"], order


def expect(exc, fn, **kw):
    try:
        fn(**kw)
    except exc as e:
        err = e.body if isinstance(e.body, dict) else {}
        assert {"message", "type", "param", "code"} <= set(err), e.body
        return err
    raise AssertionError(f"expected {exc.__name__}")


def test_errors_are_sdk_exceptions():
    chat = client.chat.completions.create
    expect(openai.NotFoundError, chat, model="Qwen3-4B", messages=MSGS)
    err = expect(openai.BadRequestError, chat, model=MODEL, messages=MSGS, max_tokens=5000)
    assert "4096" in err["message"], err
    expect(openai.BadRequestError, chat, model=MODEL, messages=MSGS, tools=[TOOL], tool_choice="required")
    expect(openai.BadRequestError, chat, model=MODEL, messages=MSGS, tools=[{"type": "function"}])
    expect(openai.BadRequestError, chat, model=MODEL, messages=MSGS, logit_bias={"151936": 1})
    expect(openai.BadRequestError, chat, model=MODEL, messages=MSGS, extra_body={"stop_token_ids": [-1]})
    expect(openai.BadRequestError, chat, model=MODEL, messages=MSGS, logprobs=True, top_logprobs=21)
    expect(openai.BadRequestError, chat, model=MODEL, messages=MSGS, response_format={"type": "json_object"})
    expect(openai.BadRequestError, client.completions.create, model=MODEL, prompt=[151936], max_tokens=1)
    expect(openai.BadRequestError, client.completions.create, model=MODEL, prompt="x", suffix="y")
    expect(openai.AuthenticationError, OpenAI(base_url=URL + "/v1", api_key="wrong", max_retries=0).models.list)


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
