//! The closed set of Python names a torch state dict pickle may use, and the data each builds.
//!
//! Invariants:
//! - Nothing here calls into Python semantics; each allowed name is a constructor of a plain
//!   record ([`StorageRef`], [`TensorRef`], an empty dict) whose arguments are type-checked.
//! - What one `REDUCE` allocates is bounded by a constant (ranks up to [`MAX_RANK`], shared
//!   keys), so memoized values reused many times cannot amplify memory.

use std::rc::Rc;

use ferrum_types::DType;

use super::{Id, Machine, Value};
use crate::weights::error::{Result, WeightError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`: the container of `model.state_dict()`.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter(tensor, requires_grad, hooks)`.
    RebuildParameter,
    /// `torch.<Type>Storage`, named in a storage's persistent id.
    Storage(StorageKind),
}

/// A typed storage class: its element size, and our dtype when we can load it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageKind {
    pub class: &'static str,
    pub dtype: Option<DType>,
    pub elem_size: u64,
}

/// Storage classes torch writes for tensors. Non-float ones (e.g. an int64 `position_ids`
/// buffer) are accepted as data so the file opens, and refused only when that tensor is asked for.
const STORAGES: &[StorageKind] = &[
    kind("FloatStorage", Some(DType::F32), 4),
    kind("HalfStorage", Some(DType::F16), 2),
    kind("BFloat16Storage", Some(DType::BF16), 2),
    kind("DoubleStorage", None, 8),
    kind("LongStorage", None, 8),
    kind("IntStorage", None, 4),
    kind("ShortStorage", None, 2),
    kind("CharStorage", None, 1),
    kind("ByteStorage", None, 1),
    kind("BoolStorage", None, 1),
];

const fn kind(class: &'static str, dtype: Option<DType>, elem_size: u64) -> StorageKind {
    StorageKind {
        class,
        dtype,
        elem_size,
    }
}

/// `('storage', torch.<Type>Storage, key, location, numel)`: the data lives in `data/<key>`.
#[derive(Debug, Clone)]
pub struct StorageRef {
    pub kind: StorageKind,
    /// Shared, because every tensor on this storage carries it: a hostile pickle that reuses
    /// one long key many times must not multiply its length.
    pub key: Rc<str>,
    /// Elements (of `kind`) in the storage.
    pub numel: u64,
}

/// A view into a storage; offset and strides are in elements.
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

/// Highest tensor rank accepted (torch itself allows 64; weights use 1 to 4).
pub const MAX_RANK: usize = 64;

/// Maps a `module.name` pair to an allowed global, or refuses it.
pub fn resolve(module: &str, name: &str) -> Result<Global> {
    let g = match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch", class) => STORAGES
            .iter()
            .find(|k| k.class == class)
            .map(|k| Global::Storage(*k)),
        _ => None,
    };
    g.ok_or_else(|| WeightError::PickleGlobal {
        module: module.to_string(),
        name: name.to_string(),
    })
}

/// `REDUCE`: applies an allowed global to an argument tuple.
pub(super) fn reduce(m: &Machine<'_>, func: Id, args: Id) -> Result<Value> {
    let Value::Global(g) = m.values[func] else {
        return Err(m.err(format!("REDUCE of a {}", m.values[func].kind())));
    };
    let args = items(m, args, "REDUCE arguments")?;
    match g {
        Global::OrderedDict if args.is_empty() => Ok(Value::Dict(Vec::new())),
        Global::OrderedDict => Err(m.err("OrderedDict with arguments")),
        Global::RebuildTensorV2 => rebuild_tensor(m, args),
        Global::RebuildParameter => match args.first().map(|&a| &m.values[a]) {
            Some(t @ Value::Tensor(_)) => Ok(t.clone()),
            _ => Err(m.err("_rebuild_parameter without a tensor")),
        },
        Global::Storage(k) => Err(m.err(format!("torch.{} called", k.class))),
    }
}

fn rebuild_tensor(m: &Machine<'_>, args: &[Id]) -> Result<Value> {
    if !(6..=7).contains(&args.len()) {
        return Err(m.err(format!(
            "_rebuild_tensor_v2 takes 6 or 7 arguments, got {}",
            args.len()
        )));
    }
    let Value::Storage(storage) = &m.values[args[0]] else {
        return Err(m.err("_rebuild_tensor_v2: first argument is not a storage"));
    };
    let offset = uint(m, args[1], "storage offset")?;
    let shape = uint_tuple(m, args[2], "size")?;
    let stride = uint_tuple(m, args[3], "stride")?;
    if shape.len() != stride.len() {
        return Err(m.err("size and stride differ in length"));
    }
    Ok(Value::Tensor(TensorRef {
        storage: storage.clone(),
        offset,
        shape,
        stride,
    }))
}

/// `BINPERSID`: turns torch's storage persistent id into a [`StorageRef`].
pub(super) fn persistent_load(m: &Machine<'_>, pid: Id) -> Result<Value> {
    let parts = items(m, pid, "persistent id")?;
    let [tag, class, key, _location, numel] = parts else {
        return Err(m.err("persistent id is not a 5-tuple"));
    };
    if !matches!(&m.values[*tag], Value::Str(s) if s == "storage") {
        return Err(m.err("persistent id is not a storage"));
    }
    let Value::Global(Global::Storage(kind)) = m.values[*class] else {
        return Err(m.err("persistent id without a storage class"));
    };
    let Value::Str(key) = &m.values[*key] else {
        return Err(m.err("storage key is not a str"));
    };
    Ok(Value::Storage(StorageRef {
        kind,
        key: Rc::from(key.as_str()),
        numel: uint(m, *numel, "storage size")?,
    }))
}

fn items<'m>(m: &'m Machine<'_>, id: Id, what: &str) -> Result<&'m [Id]> {
    match &m.values[id] {
        Value::Tuple(items) => Ok(items),
        other => Err(m.err(format!("{what}: expected tuple, found {}", other.kind()))),
    }
}

fn uint(m: &Machine<'_>, id: Id, what: &str) -> Result<u64> {
    match m.values[id] {
        Value::Int(v) if v >= 0 => Ok(v as u64),
        ref other => Err(m.err(format!(
            "{what}: expected a non-negative int, found {}",
            other.kind()
        ))),
    }
}

/// A tuple of non-negative ints of at most [`MAX_RANK`] entries (a size or a stride).
fn uint_tuple(m: &Machine<'_>, id: Id, what: &str) -> Result<Vec<u64>> {
    let items = items(m, id, what)?;
    if items.len() > MAX_RANK {
        return Err(m.err(format!(
            "{what} of rank {}, at most {MAX_RANK}",
            items.len()
        )));
    }
    items.iter().map(|&i| uint(m, i, what)).collect()
}
