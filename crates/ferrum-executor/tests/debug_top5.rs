mod common;
use ferrum_backend::HostTensor;
use ferrum_model::weights::{GgufMetadata, TensorInfo, WeightSource};
use ferrum_model::ModelBundle;
use ferrum_types::DType;

struct Deq<'a>(&'a dyn WeightSource);
impl WeightSource for Deq<'_> {
    fn names(&self) -> Vec<String> {
        self.0.names()
    }
    fn info(&self, n: &str) -> Option<TensorInfo> {
        self.0.info(n)
    }
    fn tensor(&self, n: &str) -> ferrum_model::weights::Result<HostTensor<'_>> {
        let t = self.0.tensor(n)?;
        if !t.dtype.is_quantized() {
            return Ok(t);
        }
        let only = std::env::var("ONLY").unwrap_or_default();
        if !only.is_empty() && !n.contains(&only) {
            return Ok(t);
        }
        let numel = t.numel();
        let mut out = vec![0f32; numel];
        ferrum_backend::cpu::quant::dequantize_row(t.dtype, &t.data, &mut out).unwrap();
        let bytes: Vec<u8> = out.iter().flat_map(|x| x.to_le_bytes()).collect();
        Ok(HostTensor {
            dtype: DType::F32,
            shape: t.shape.clone(),
            data: bytes.into(),
        })
    }
    fn total_bytes(&self) -> u64 {
        0
    }
    fn format(&self) -> &'static str {
        "deq"
    }
    fn gguf_metadata(&self) -> Option<&GgufMetadata> {
        self.0.gguf_metadata()
    }
}

fn top(logits: &[f32]) {
    let max = logits.iter().cloned().fold(f32::MIN, f32::max);
    let lse = max
        + logits
            .iter()
            .map(|l| ((l - max) as f64).exp())
            .sum::<f64>()
            .ln() as f32;
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    eprintln!(
        "{:?}",
        idx[..5]
            .iter()
            .map(|&i| (i, logits[i] - lse))
            .collect::<Vec<_>>()
    );
}

#[test]
#[ignore]
fn top5() {
    let bundle = ModelBundle::open(&common::default_model()).unwrap();
    let g: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::shared_golden("smollm2-q4_1-llamacpp.json")).unwrap(),
    )
    .unwrap();
    let k: usize = std::env::var("K").unwrap().parse().unwrap();
    let prompt: Vec<u32> =
        serde_json::from_value(g["results"][k]["prompt_token_ids"].clone()).unwrap();
    eprintln!("{} tokens", prompt.len());
    let table: Vec<u32> = (0..8).collect();
    let inp = [ferrum_executor::SeqInput {
        tokens: &prompt,
        num_computed_tokens: 0,
        block_table: &table,
        want_logits: true,
    }];
    let mut runner = common::runner(&bundle, 256, 2);
    top(&runner.execute(&inp).unwrap());
    let backend = ferrum_backend::cpu::CpuBackend::new(2).unwrap();
    let cfg = bundle.config.clone();
    let deq = Deq(bundle.weights.as_ref());
    let model = ferrum_model::DecoderModel::load(&backend, cfg.clone(), &deq).unwrap();
    let spec = ferrum_backend::KvCacheSpec {
        num_layers: cfg.num_layers,
        num_kv_heads: cfg.num_kv_heads,
        head_dim: cfg.head_dim,
        block_size: 16,
        num_blocks: 8,
    };
    let mut r2 = ferrum_executor::ModelRunner::new(backend, model, spec, 64, 1).unwrap();
    top(&r2.execute(&inp).unwrap());
}
