mod common;
use ferrum_executor::SeqInput;
use ferrum_model::ModelBundle;
#[test]
#[ignore]
fn teacher_forced() {
    let bundle = ModelBundle::open(&common::default_model()).unwrap();
    let g: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::shared_golden("smollm2-q4_1-llamacpp.json")).unwrap(),
    )
    .unwrap();
    let mut runner = common::runner(&bundle, 256, 2);
    for (k, case) in g["results"].as_array().unwrap().iter().enumerate() {
        let prompt: Vec<u32> = serde_json::from_value(case["prompt_token_ids"].clone()).unwrap();
        let out: Vec<u32> = serde_json::from_value(case["output_token_ids"].clone()).unwrap();
        let safe = case["safe_prefix_tokens"].as_u64().unwrap() as usize;
        let aligned = case["steps"].as_array().unwrap().len() == out.len();
        let table: Vec<u32> = (0..12).collect();
        let mut ctx = prompt.clone();
        let mut done = 0;
        let mut bad = Vec::new();
        for (i, &t) in out.iter().enumerate() {
            let logits = runner
                .execute(&[SeqInput {
                    tokens: &ctx[done..],
                    num_computed_tokens: done,
                    block_table: &table,
                    want_logits: true,
                }])
                .unwrap();
            done = ctx.len();
            let mut idx: Vec<usize> = (0..logits.len()).collect();
            idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
            if idx[0] as u32 != t {
                let margin = if aligned {
                    let top = &case["steps"][i]["top"];
                    top[0][1].as_f64().unwrap() - top[1][1].as_f64().unwrap()
                } else {
                    -1.0
                };
                bad.push((
                    i,
                    (margin * 1000.0).round() / 1000.0,
                    ((logits[idx[0]] - logits[t as usize]) * 1000.0).round() / 1000.0,
                ));
            }
            ctx.push(t);
        }
        eprintln!("case {k} safe {safe} disagreements (step, golden margin, our margin): {bad:?}");
    }
}
