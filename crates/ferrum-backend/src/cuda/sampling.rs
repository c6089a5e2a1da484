//! Sampling on the device (`kernels/sampling.cu`): the logits stay on the GPU and one token id
//! per row comes back. Rows without a cut-off (greedy, temperature alone) go to `sample_split`,
//! spread over the card in slices; the others to `sample_rows`, one block per row.
//!
//! Invariants:
//! - every row the device samples is taken by exactly one of the two kernels: both apply the
//!   same test to the same parameter words (`split_row` here and in the kernel), and the host
//!   launches each kernel that has a row;
//! - `sample_split`'s row counters are zero between launches (allocated zeroed, and the last
//!   block of each row resets its own);
//! - parameters and adjustments travel in one `u32` upload per step, checked on the host first
//!   (rows within the logits buffer, one entry per (row, token), tokens within the
//!   vocabulary); a row marked [`RowSampling::Host`] is left untouched by the sampling kernels;
//! - the buffers, on the device and on the host, are the backend's and persist (no allocation
//!   per step once they are large enough): the tokens of the latest selection stay in `tokens`
//!   until the next one, which is what `patch_input_ids` reads; each selection is copied to one
//!   of two page-locked host buffers (ticket parity), so the host may read ticket t while t + 1
//!   is queued, but must have read t before t + 2 is issued.

use cudarc::driver::{CudaEvent, CudaFunction, CudaSlice, LaunchConfig, PinnedHostSlice};

use super::launch::param;
use super::tensor::{grow_zeroed, CudaBatch};
use super::{as_u32, launch_err, CudaActivations, CudaBackend, CudaError};
use crate::{BackendError, LogitAdjust, Result, RowSampling};

/// The sampler's persistent device and host buffers.
#[derive(Default)]
pub(super) struct SamplerState {
    params: Option<CudaSlice<u32>>,
    tokens: Option<CudaSlice<u32>>,
    /// Row counters and slice records of `sample_split` (see the kernel).
    split: Option<CudaSlice<u32>>,
    pairs: Option<CudaSlice<u32>>,
    /// Page-locked copies of the tokens, each with the event recorded behind its copy (ours:
    /// the context does not track events, so cudarc's own would never be recorded).
    host: [Option<(PinnedHostSlice<u32>, CudaEvent)>; 2],
    /// Rows of the selection in each host buffer.
    host_rows: [usize; 2],
    /// Tickets issued so far (the latest is `issued`), and the rows of the latest.
    issued: u64,
    latest_rows: usize,
    /// The ticket each host buffer holds until the host reads it.
    unread: [Option<u64>; 2],
    staging: super::host_ring::HostRing,
    /// The words of the latest upload (parameters or patches), laid out on the host; kept so
    /// that a step allocates nothing.
    words: Vec<u32>,
}

/// Enqueues `f` without programmatic dependent launch, with its parameters on the stack. These
/// kernels mostly follow an upload in stream order (`sample_rows` does unless adjustments come
/// first), and PDL cannot overlap a copy.
///
/// # Safety
/// As `launch::launch`: one pointer per kernel parameter, of the declared types, and every
/// device address valid for the kernel's accesses.
unsafe fn launch_plain(
    be: &CudaBackend,
    f: &CudaFunction,
    name: &str,
    cfg: LaunchConfig,
    params: &mut [*mut std::ffi::c_void],
) -> Result<()> {
    // SAFETY: the caller's contract.
    unsafe { super::launch::launch(false, &be.stream, f, cfg, params) }
        .map_err(|e| launch_err(name, e))
}

fn state(be: &CudaBackend) -> Result<std::sync::MutexGuard<'_, SamplerState>> {
    be.sampler
        .lock()
        .map_err(|_| BackendError::Device("sampler state poisoned".into()))
}

/// `buf`, grown to at least `len` words (its contents are not kept).
fn ensure(
    be: &CudaBackend,
    buf: &mut Option<CudaSlice<u32>>,
    len: usize,
    what: &str,
) -> Result<()> {
    grow_zeroed(buf, len, &be.stream, what, &be.info.name).map(|_| ())
}

/// u32 words per row (see the kernel's header).
const PARAM_WORDS: usize = 6;
/// u32 words per adjustment.
const ADJUST_WORDS: usize = 5;
const SAMPLE_THREADS: u32 = 1024;
/// `SPLIT_THREADS`, `SPLIT_SLICE` and `SPLIT_RECORD` of the kernel.
const SPLIT_THREADS: u32 = 512;
const SPLIT_SLICE: usize = SPLIT_THREADS as usize * 16;
const SPLIT_RECORD: usize = 3;

/// Whether `sample_split` takes a row (the kernel's `split_row`, on the same words): greedy,
/// or temperature without top-k, top-p or min-p.
fn split_row(w: &[u32; PARAM_WORDS], vocab: usize) -> bool {
    let (mode, top_k) = (w[0], w[2] as usize);
    mode == 1
        || (mode == 2
            && (top_k == 0 || top_k >= vocab)
            && f32::from_bits(w[3]) >= 1.0
            && f32::from_bits(w[4]) <= 0.0)
}

fn row_words(r: &RowSampling) -> [u32; PARAM_WORDS] {
    match *r {
        RowSampling::Host => [0; PARAM_WORDS],
        RowSampling::Greedy => [1, 0, 0, 0, 0, 0],
        RowSampling::Random {
            temperature,
            top_k,
            top_p,
            min_p,
            uniform,
        } => [
            2,
            temperature.to_bits(),
            top_k,
            top_p.to_bits(),
            min_p.to_bits(),
            uniform.to_bits(),
        ],
    }
}

impl CudaBackend {
    /// Turns `sample_split` on or off (tests compare it with the one-block kernel).
    pub fn set_split_sampling(&mut self, on: bool) {
        self.split_sampling = on;
    }
}

pub(super) fn sample(
    be: &CudaBackend,
    logits: &mut CudaActivations,
    rows: &[RowSampling],
    adjust: &[LogitAdjust],
) -> Result<Vec<u32>> {
    if rows.is_empty() {
        logits.check_rows(0, "sample")?;
        return Ok(Vec::new());
    }
    let ticket = sample_deferred(be, logits, rows, adjust)?;
    let mut tokens = Vec::with_capacity(rows.len());
    wait_sampled(be, ticket, &mut tokens)?;
    Ok(tokens)
}

pub(super) fn sample_deferred(
    be: &CudaBackend,
    logits: &mut CudaActivations,
    rows: &[RowSampling],
    adjust: &[LogitAdjust],
) -> Result<u64> {
    let n = rows.len();
    logits.check_rows(n, "sample")?;
    if n == 0 {
        return Err(BackendError::Batch("sampling zero rows".into()));
    }
    let vocab = logits.cols;
    let mut st = state(be)?;
    let st = &mut *st;
    let host = &mut st.words;
    host.clear();
    host.reserve(n * PARAM_WORDS + adjust.len() * ADJUST_WORDS);
    // Which kernels have rows: `sample_split` (spread over the card) and `sample_rows`.
    let (mut any_split, mut any_rows) = (false, false);
    for r in rows {
        let w = row_words(r);
        if be.split_sampling && split_row(&w, vocab) {
            any_split = true;
        } else if w[0] != 0 {
            any_rows = true;
        }
        host.extend_from_slice(&w);
    }
    for a in adjust {
        if a.row as usize >= n || a.token as usize >= vocab {
            return Err(BackendError::Batch(format!(
                "logit adjustment for row {} token {} outside {n} rows × {vocab} tokens",
                a.row, a.token
            )));
        }
        host.extend_from_slice(&[
            a.row,
            a.token,
            a.pre_add.to_bits(),
            a.rep.to_bits(),
            a.post_add.to_bits(),
        ]);
    }
    let ticket = st.issued + 1;
    let slot = (ticket % 2) as usize;
    if let Some(old) = st.unread[slot] {
        return Err(BackendError::Device(format!(
            "sampling ticket {ticket} issued before ticket {old} was read"
        )));
    }
    ensure(be, &mut st.params, st.words.len(), "sampling parameters")?;
    // The token buffer is sized once for every row the logits can hold, so that a later
    // growth never drops the tokens a patch still reads.
    let capacity = logits.capacity_rows.max(n);
    ensure(be, &mut st.tokens, capacity, "sampled tokens")?;
    let (Some(params), Some(tokens)) = (st.params.as_ref(), st.tokens.as_ref()) else {
        return Err(BackendError::Device("sampling buffers missing".into()));
    };
    let base = super::addr(params, &be.stream);
    // `params` holds at least `words.len()` words (grown above).
    st.staging.upload(&be.ctx, &be.stream, &st.words, base)?;
    let la = be.a(&logits.data);
    let v = as_u32(vocab, "vocab")?;
    if !adjust.is_empty() {
        let ops = base + (4 * n * PARAM_WORDS) as u64;
        let count = as_u32(adjust.len(), "logit adjustments")?;
        let cfg = super::grid(adjust.len().div_ceil(256), 1, 256)?;
        // SAFETY: `ops` holds `count` entries of ADJUST_WORDS words whose rows and tokens were
        // checked against the logits buffer above.
        unsafe {
            launch_plain(
                be,
                &be.k.apply_logit_adjust,
                "apply_logit_adjust",
                cfg,
                &mut [param(&la), param(&ops), param(&count), param(&v)],
            )
        }?;
    }
    let oa = super::addr(tokens, &be.stream);
    if any_rows {
        let cfg = LaunchConfig {
            grid_dim: (as_u32(n, "rows")?, 1, 1),
            block_dim: (SAMPLE_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let skip_split = u32::from(be.split_sampling);
        // SAFETY: `base` holds n rows of PARAM_WORDS words, the logits buffer at least n rows
        // of `vocab` values and `tokens` at least n words.
        unsafe {
            launch_plain(
                be,
                &be.k.sample_rows,
                "sample_rows",
                cfg,
                &mut [
                    param(&la),
                    param(&base),
                    param(&v),
                    param(&oa),
                    param(&skip_split),
                ],
            )
        }?;
    }
    if any_split {
        let slices = vocab.div_ceil(SPLIT_SLICE);
        let cap = as_u32(capacity, "sampling rows")?;
        ensure(
            be,
            &mut st.split,
            capacity * (1 + slices * SPLIT_RECORD),
            "split sampling scratch",
        )?;
        let Some(split) = st.split.as_ref() else {
            return Err(BackendError::Device(
                "split sampling scratch missing".into(),
            ));
        };
        let sa = super::addr(split, &be.stream);
        let cfg = super::grid(slices, n, SPLIT_THREADS)?;
        // SAFETY: as above, and `sa` holds `capacity` zeroed counters (each launch leaves them
        // zero) followed by `slices` records of SPLIT_RECORD words for each of `capacity` rows.
        unsafe {
            launch_plain(
                be,
                &be.k.sample_split,
                "sample_split",
                cfg,
                &mut [
                    param(&la),
                    param(&base),
                    param(&v),
                    param(&oa),
                    param(&sa),
                    param(&cap),
                ],
            )
        }?;
    }
    if st.host[slot].as_ref().is_none_or(|(h, _)| h.len() < n) {
        // SAFETY: page-locked memory of `capacity` u32 (cached, not write-combined: the host
        // reads it); every word read was written by a copy below first.
        let h = unsafe { be.ctx.alloc_pinned_with_flags::<u32>(capacity, 0) }
            .map_err(CudaError::from)?;
        let ev = be.ctx.new_event(None).map_err(CudaError::from)?;
        st.host[slot] = Some((h, ev));
    }
    let Some((h, ev)) = st.host[slot].as_mut() else {
        return Err(BackendError::Device("sampling host buffer missing".into()));
    };
    let src = tokens.slice(..n);
    be.stream.memcpy_dtoh(&src, h).map_err(CudaError::from)?;
    ev.record(&be.stream).map_err(CudaError::from)?;
    st.host_rows[slot] = n;
    st.unread[slot] = Some(ticket);
    st.issued = ticket;
    st.latest_rows = n;
    Ok(ticket)
}

/// Waits for ticket `ticket`'s tokens and puts them in `out` (replacing its contents).
pub(super) fn wait_sampled(be: &CudaBackend, ticket: u64, out: &mut Vec<u32>) -> Result<()> {
    let mut st = state(be)?;
    let slot = (ticket % 2) as usize;
    if st.unread[slot] != Some(ticket) {
        return Err(BackendError::Device(format!(
            "sampling ticket {ticket} is not waiting to be read"
        )));
    }
    let n = st.host_rows[slot];
    match st.host[slot].as_ref() {
        Some((h, ev)) => {
            ev.synchronize().map_err(CudaError::from)?;
            out.clear();
            out.extend_from_slice(&h.as_slice().map_err(CudaError::from)?[..n]);
        }
        None => return Err(BackendError::Device("sampling host buffer missing".into())),
    }
    st.unread[slot] = None;
    Ok(())
}

pub(super) fn patch_input_ids(
    be: &CudaBackend,
    batch: &CudaBatch,
    patches: &[[u32; 2]],
) -> Result<()> {
    if patches.is_empty() {
        return Ok(());
    }
    be.live(batch)?;
    let mut st = state(be)?;
    let st = &mut *st;
    let rows = st.latest_rows;
    st.words.clear();
    for &[t, r] in patches {
        if t as usize >= batch.num_tokens || r as usize >= rows {
            return Err(BackendError::Batch(format!(
                "input patch [{t}, {r}] outside {} tokens and {rows} sampled rows",
                batch.num_tokens
            )));
        }
        st.words.extend_from_slice(&[t, r]);
    }
    ensure(be, &mut st.pairs, st.words.len(), "input patches")?;
    let (Some(pairs), Some(tokens)) = (st.pairs.as_ref(), st.tokens.as_ref()) else {
        return Err(BackendError::Device(
            "no sampled tokens to patch from".into(),
        ));
    };
    let pa = super::addr(pairs, &be.stream);
    // `pairs` holds at least `words.len()` words (grown above).
    st.staging.upload(&be.ctx, &be.stream, &st.words, pa)?;
    let ta = super::addr(tokens, &be.stream);
    let ia = batch.base + 4 * batch.off.input_ids as u64;
    let n = as_u32(patches.len(), "input patches")?;
    let cfg = super::grid(patches.len().div_ceil(256), 1, 256)?;
    // SAFETY: `ia` is the batch's input_ids array of `num_tokens` words in the live upload
    // buffer, `pa` holds n checked pairs, and `ta` at least `rows` sampled tokens.
    unsafe {
        launch_plain(
            be,
            &be.k.patch_input_ids,
            "patch_input_ids",
            cfg,
            &mut [param(&ia), param(&pa), param(&n), param(&ta)],
        )
    }
}
