#!/usr/bin/env bash
# The deployment guide's commands, verbatim apart from host, port and key variables.
set -euo pipefail
URL=${E2E_URL:?}
API_KEY=${E2E_KEY:?}
MODEL=${E2E_MODEL:?}

curl -sf "$URL/health"
curl -sf "$URL/v1/models" -H "Authorization: Bearer $API_KEY" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["data"][0]["id"]=="'"$MODEL"'", d; assert d["data"][0]["max_model_len"]==2048'
out=$(curl -sf "$URL/v1/chat/completions" \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer $API_KEY" \
  -d '{
    "model": "'"$MODEL"'",
    "messages": [
      {"role": "system", "content": "You are a helpful assistant."},
      {"role": "user", "content": "What is the capital of France?"}
    ],
    "temperature": 0,
    "max_tokens": 32
  }')
echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); c=d["choices"][0]["message"]["content"]; assert "Paris" in c, d; print(c)'
# Without the key: 401 in the OpenAI shape.
code=$(curl -s -o /tmp/ferrum_401.json -w '%{http_code}' "$URL/v1/models")
[ "$code" = 401 ] && grep -q '"authentication_error"' /tmp/ferrum_401.json
# The JDK's h2c upgrade headers on a POST body (what a Spring backend sends).
curl -sf "$URL/v1/chat/completions" -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' \
  -H 'Connection: Upgrade, HTTP2-Settings' -H 'Upgrade: h2c' -H 'HTTP2-Settings: AAEAAEAA' \
  -d '{"model":"'"$MODEL"'","messages":[{"role":"user","content":"hi"}],"max_tokens":4}' >/dev/null
# Streaming ends with [DONE].
curl -sfN "$URL/v1/chat/completions" -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' \
  -d '{"model":"'"$MODEL"'","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"stream":true}' | tail -n 2 | grep -q 'data: \[DONE\]'
