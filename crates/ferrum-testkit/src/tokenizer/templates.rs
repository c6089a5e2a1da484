//! Chat templates (Jinja) of our own, in each family's wire format.
//!
//! ChatML for Qwen (with tools in the system turn, `<tool_call>` blocks for assistant calls and
//! `<tool_response>` for tool results); Qwen3's also honours `enable_thinking=false` by
//! emitting an empty think block. Llama-3's header/eot format for Llama. Written to work in
//! both Jinja2 (transformers) and minijinja (ferrum-tokenizer).

use crate::spec::Arch;

const CHATML_HEAD: &str = r##"{%- if tools %}
{{- '<|im_start|>system\n' }}
{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] + '\n\n' }}{%- endif %}
{{- '# Tools\n\nYou can call these functions; their signatures are inside <tools></tools>:\n<tools>' }}
{%- for tool in tools %}{{- '\n' }}{{- tool | tojson }}{%- endfor %}
{{- '\n</tools>\n\nTo call one, answer with a JSON object inside <tool_call></tool_call>:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}
{%- elif messages[0]['role'] == 'system' %}
{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message['role'] == 'system' and loop.first %}
{%- elif message['role'] == 'tool' %}
{{- '<|im_start|>user\n<tool_response>\n' + message['content'] + '\n</tool_response><|im_end|>\n' }}
{%- elif message['role'] == 'assistant' and message['tool_calls'] %}
{{- '<|im_start|>assistant' }}
{%- if message['content'] %}{{- '\n' + message['content'] }}{%- endif %}
{%- for call in message['tool_calls'] %}
{%- set f = call['function'] if call['function'] is defined else call %}
{{- '\n<tool_call>\n{"name": "' + f['name'] + '", "arguments": ' }}
{%- if f['arguments'] is string %}{{- f['arguments'] }}{%- else %}{{- f['arguments'] | tojson }}{%- endif %}
{{- '}\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\n' }}
{%- else %}
{{- '<|im_start|>' + message['role'] + '\n' + (message['content'] or '') + '<|im_end|>\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
"##;

const QWEN3_THINKING_SWITCH: &str = r##"{%- if enable_thinking is defined and not enable_thinking %}
{{- '<think>\n\n</think>\n\n' }}
{%- endif %}
"##;

const LLAMA3: &str = r##"{{- bos_token }}
{%- for message in messages %}
{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + ((message['content'] or '') | trim) + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"##;

/// The chat template of a family.
pub fn chat_template(arch: Arch) -> String {
    match arch {
        Arch::Llama => LLAMA3.to_string(),
        Arch::Qwen2 => format!("{CHATML_HEAD}{{%- endif %}}\n"),
        Arch::Qwen3 => format!("{CHATML_HEAD}{QWEN3_THINKING_SWITCH}{{%- endif %}}\n"),
    }
}
