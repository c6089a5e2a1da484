#!/usr/bin/env python3
"""Checks a generated Qwen tokenizer.json against tiktoken on the same ranks and pattern.

Usage: verify_qwen_tokenizer.py MODEL_DIR QWEN_TIKTOKEN

Needs `pip install tokenizers tiktoken` (verification only; nothing in Ferrum depends on them).
The model dir is one written with `ferrum-testkit make-model --qwen-vocab QWEN_TIKTOKEN`.
Both sides encode the same texts: hand-picked edge cases (contractions, digits, whitespace
runs, CJK, emoji, code, special tokens), every Python stdlib module's source in chunks, and
seeded random strings over a mixed alphabet. tokenizer.json NFC-normalizes and tiktoken does
not, so texts are NFC-normalized first. Ids must be equal; decoding must give the text back.
"""

import base64
import json
import random
import sys
import sysconfig
import unicodedata
from pathlib import Path

import tiktoken
from tokenizers import Tokenizer

QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

EDGE_CASES = [
    "Hello, world!",
    "I'm sure you've heard they'll say it's fine, isn't it? I'D SAY YOU'RE RIGHT.",
    "12345 3.14159 1,000,000 0x1F $42.50 100%",
    "   leading spaces\n\n\ttabs\r\nand CRLF   \n",
    "東京は日本の首都です。你好，世界！안녕하세요 привет мир",
    "emoji 🙂🚀👨‍👩‍👧 and flags 🇯🇵",
    "def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n",
    '{"role": "user", "content": "What is 2+2?"}',
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
    "<think>\nreasoning here\n</think>\n\nanswer <tool_call>{}</tool_call>",
    "café naïve Straße ﬁ ligature ½ ①",
    "a" * 300,
    " " * 17 + "x",
    "\u00a0non-breaking\u2003em space\u200bzero width",
]


def stdlib_texts(limit_chars=3_000_000, chunk=4000):
    root = Path(sysconfig.get_paths()["stdlib"])
    total = 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        for i in range(0, len(text), chunk):
            yield text[i : i + chunk]
        total += len(text)
        if total > limit_chars:
            return


def random_texts(n=3000, seed=1234):
    rng = random.Random(seed)
    alphabet = (
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        + list(" \t\n\r.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&`~")
        + list("éüñßøåçàèìòù東京日本中文字한국어ДЖЯ€£¥©®™🙂🚀")
        + ["'s", "'ll", "'RE", "  ", "\n\n", "<|im_end|>", "<think>"]
    )
    for _ in range(n):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    model_dir, ranks_path = Path(argv[1]), Path(argv[2])
    ranks = {}
    for line in ranks_path.read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    added = json.loads((model_dir / "tokenizer.json").read_text())["added_tokens"]
    special = {t["content"]: t["id"] for t in added}
    reference = tiktoken.Encoding(
        name="qwen", pat_str=QWEN_PATTERN, mergeable_ranks=ranks, special_tokens=special
    )
    ours = Tokenizer.from_file(str(model_dir / "tokenizer.json"))

    checked = mismatched = tokens = 0
    texts = [*EDGE_CASES, *stdlib_texts(), *random_texts()]
    for text in texts:
        text = unicodedata.normalize("NFC", text)
        want = reference.encode(text, allowed_special="all")
        got = ours.encode(text, add_special_tokens=False).ids
        checked += 1
        tokens += len(want)
        if got != want:
            mismatched += 1
            if mismatched <= 5:
                print(f"MISMATCH {text[:80]!r}\n  tiktoken {want[:40]}\n  ours     {got[:40]}")
        back = ours.decode(got, skip_special_tokens=False)
        if back != text:
            mismatched += 1
            print(f"ROUND TRIP {text[:80]!r} -> {back[:80]!r}")
    print(f"{checked} texts, {tokens} tokens, {mismatched} mismatches")
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
