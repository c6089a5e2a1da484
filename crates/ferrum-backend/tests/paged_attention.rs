//! Paged attention over scattered blocks equals a naive causal attention over contiguous keys
//! and values, for a varlen batch mixing prefill chunks and decode tokens with GQA.

mod gpu_common;
use ferrum_backend::cpu::CpuBackend;
use ferrum_backend::{AttentionBatch, AttentionParams, Backend, KvCacheSpec};
use gpu_common::Lcg;

#[test]
fn paged_equals_naive() {
    let (nh, nkv, hd, bs) = (4usize, 2usize, 8usize, 4usize);
    let backend = CpuBackend::new(2).unwrap();
    let spec = KvCacheSpec {
        num_layers: 1,
        num_kv_heads: nkv,
        head_dim: hd,
        block_size: bs,
        num_blocks: 40,
    };
    let mut cache = backend.new_kv_cache(&spec).unwrap();
    let mut rng = Lcg(7);
    // (context length after the step, tokens in this step)
    let seqs = [(13usize, 13usize), (9, 1), (22, 5)];
    let mut keys: Vec<Vec<f32>> = Vec::new(); // per seq, contiguous [ctx, nkv*hd]
    let mut vals: Vec<Vec<f32>> = Vec::new();
    let mut tables: Vec<Vec<u32>> = Vec::new();
    let mut next_block = 39u32;
    for &(ctx, _) in &seqs {
        keys.push((0..ctx * nkv * hd).map(|_| rng.next()).collect());
        vals.push((0..ctx * nkv * hd).map(|_| rng.next()).collect());
        let blocks = ctx.div_ceil(bs);
        tables.push(
            (0..blocks)
                .map(|_| {
                    next_block -= 3;
                    next_block % 40
                })
                .collect(),
        );
    }
    let max_blocks = tables.iter().map(Vec::len).max().unwrap();
    let slot = |s: usize, t: usize| tables[s][t / bs] * bs as u32 + (t % bs) as u32;
    // Earlier context goes in through a first write (as earlier steps would have done).
    let mut pre = (Vec::new(), Vec::new(), Vec::new());
    for (s, &(ctx, q)) in seqs.iter().enumerate() {
        for t in 0..ctx - q {
            pre.0.push(slot(s, t));
            pre.1
                .extend_from_slice(&keys[s][t * nkv * hd..(t + 1) * nkv * hd]);
            pre.2
                .extend_from_slice(&vals[s][t * nkv * hd..(t + 1) * nkv * hd]);
        }
    }
    let mut ids = Vec::new();
    let mut positions = Vec::new();
    let mut slots = Vec::new();
    let mut qsl = vec![0u32];
    let mut k_new = Vec::new();
    let mut v_new = Vec::new();
    for (s, &(ctx, q)) in seqs.iter().enumerate() {
        for t in ctx - q..ctx {
            ids.push(1u32);
            positions.push(t as u32);
            slots.push(slot(s, t));
            k_new.extend_from_slice(&keys[s][t * nkv * hd..(t + 1) * nkv * hd]);
            v_new.extend_from_slice(&vals[s][t * nkv * hd..(t + 1) * nkv * hd]);
        }
        qsl.push(ids.len() as u32);
    }
    let n = ids.len();
    let seq_lens: Vec<u32> = seqs.iter().map(|s| s.0 as u32).collect();
    let mut bt = Vec::new();
    for t in &tables {
        bt.extend_from_slice(t);
        bt.resize(bt.len() + max_blocks - t.len(), 0);
    }
    let upload = |rows: usize, cols: usize, data: &[f32]| {
        let mut a = backend.new_activations(rows.max(1), cols).unwrap();
        let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = ferrum_backend::HostTensor {
            dtype: ferrum_types::DType::F32,
            shape: vec![rows, cols],
            data: bytes.into(),
        };
        // Embedding a table with identity ids copies rows into activations.
        let w = backend.load_weight(&t).unwrap();
        let ids: Vec<u32> = (0..rows as u32).collect();
        let zeros = vec![0u32; rows];
        let b = AttentionBatch {
            input_ids: &ids,
            positions: &zeros,
            slot_mapping: &zeros,
            query_start_loc: &[0, rows as u32],
            seq_lens: &[rows as u32],
            block_tables: &[],
            max_blocks_per_seq: 0,
            logits_indices: &[],
        };
        let b = backend.prepare_batch(&b).unwrap();
        backend.embedding(&w, &b, &mut a).unwrap();
        a
    };
    let pre_n = pre.0.len();
    let pre_batch = AttentionBatch {
        input_ids: &vec![0; pre_n],
        positions: &vec![0; pre_n],
        slot_mapping: &pre.0,
        query_start_loc: &[0, pre_n as u32],
        seq_lens: &[pre_n as u32],
        block_tables: &[],
        max_blocks_per_seq: 0,
        logits_indices: &[],
    };
    let pre_b = backend.prepare_batch(&pre_batch).unwrap();
    backend
        .write_kv(
            &mut cache,
            0,
            &pre_b,
            &upload(pre_n, nkv * hd, &pre.1),
            &upload(pre_n, nkv * hd, &pre.2),
        )
        .unwrap();

    let q: Vec<f32> = (0..n * nh * hd).map(|_| rng.next()).collect();
    let batch = AttentionBatch {
        input_ids: &ids,
        positions: &positions,
        slot_mapping: &slots,
        query_start_loc: &qsl,
        seq_lens: &seq_lens,
        block_tables: &bt,
        max_blocks_per_seq: max_blocks,
        logits_indices: &[],
    };
    batch.validate(bs).unwrap();
    let b = backend.prepare_batch(&batch).unwrap();
    backend
        .write_kv(
            &mut cache,
            0,
            &b,
            &upload(n, nkv * hd, &k_new),
            &upload(n, nkv * hd, &v_new),
        )
        .unwrap();
    let qa = upload(n, nh * hd, &q);
    let mut out = backend.new_activations(n, nh * hd).unwrap();
    let params = AttentionParams {
        num_heads: nh,
        num_kv_heads: nkv,
        head_dim: hd,
        scale: 1.0 / (hd as f32).sqrt(),
    };
    backend
        .attention(&cache, 0, &b, &params, &qa, &mut out)
        .unwrap();
    let got = backend.to_host(&out, n).unwrap();

    // Naive reference in f64.
    let mut row = 0;
    for (s, &(ctx, ql)) in seqs.iter().enumerate() {
        for i in 0..ql {
            let visible = ctx - ql + i + 1;
            for h in 0..nh {
                let g = h / (nh / nkv);
                let qv = &q[(row * nh + h) * hd..(row * nh + h + 1) * hd];
                let scores: Vec<f64> = (0..visible)
                    .map(|j| {
                        (0..hd)
                            .map(|d| f64::from(qv[d]) * f64::from(keys[s][(j * nkv + g) * hd + d]))
                            .sum::<f64>()
                            * f64::from(params.scale)
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|x| (x - m).exp()).sum();
                for d in 0..hd {
                    let want: f64 = (0..visible)
                        .map(|j| {
                            (scores[j] - m).exp() / z * f64::from(vals[s][(j * nkv + g) * hd + d])
                        })
                        .sum();
                    let have = got[(row * nh + h) * hd + d];
                    assert!(
                        (f64::from(have) - want).abs() < 1e-5,
                        "seq {s} token {i} head {h} dim {d}: {have} vs {want}"
                    );
                }
            }
            row += 1;
        }
    }
}
