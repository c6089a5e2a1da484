//! A restricted unpickler for the `data.pkl` of a `torch.save` archive. It reads data only:
//! nothing is imported, called or executed.
//!
//! Invariants:
//! - Only the opcodes a state dict uses are interpreted; any other opcode stops the machine with
//!   [`WeightError::PickleOpcode`] naming it.
//! - `GLOBAL`/`STACK_GLOBAL` resolve to a closed set of known names ([`Global`]); any other name
//!   is refused with [`WeightError::PickleGlobal`], and `REDUCE` applies only those names, as
//!   data constructors (see `torch.rs`).
//! - Values live in an arena and the stack and memo hold indices, so `BINGET` aliases instead of
//!   copying (as Python does): each opcode adds at most one value, so memory is linear in the
//!   pickle's length whatever it contains.

mod opcodes;
mod torch;

use std::collections::HashMap;

use super::bytes::Cursor;
use super::error::{Result, WeightError};

pub use torch::{Global, StorageKind, StorageRef, TensorRef};

/// Index of a value in [`Pickle::values`].
pub type Id = usize;

#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Insertion-ordered pairs (a `dict` or `collections.OrderedDict`).
    Dict(Vec<(Id, Id)>),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// The unpickled object graph; `root` is what `STOP` returned.
pub struct Pickle {
    pub values: Vec<Value>,
    pub root: Id,
}

impl Pickle {
    pub fn get(&self, id: Id) -> &Value {
        &self.values[id]
    }
}

/// Interprets `data` with the restricted machine.
pub fn unpickle(data: &[u8]) -> Result<Pickle> {
    let mut m = Machine {
        c: Cursor::new(data, "pickle"),
        op_at: 0,
        values: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = m.run()?;
    Ok(Pickle {
        values: m.values,
        root,
    })
}

struct Machine<'a> {
    c: Cursor<'a>,
    /// Offset of the opcode being executed, for error messages.
    op_at: usize,
    values: Vec<Value>,
    stack: Vec<Id>,
    /// Stack heights at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

impl Machine<'_> {
    fn run(&mut self) -> Result<Id> {
        use opcodes::*;
        loop {
            self.op_at = self.c.pos();
            let op = self.c.u8("opcode")?;
            match op {
                PROTO => {
                    let v = self.c.u8("protocol")?;
                    if v > 5 {
                        return Err(WeightError::UnsupportedVersion {
                            format: "pickle",
                            version: v.into(),
                        });
                    }
                }
                FRAME => {
                    // Framing only groups opcodes for buffered reads; the data is already here.
                    self.c.u64("frame length")?;
                }
                STOP => return self.pop(),
                MARK => self.marks.push(self.stack.len()),
                EMPTY_DICT => self.push(Value::Dict(Vec::new())),
                EMPTY_TUPLE => self.push(Value::Tuple(Vec::new())),
                EMPTY_LIST => self.push(Value::List(Vec::new())),
                BINPUT => {
                    let k = self.c.u8("memo key")?.into();
                    self.put(k)?
                }
                LONG_BINPUT => {
                    let k = self.c.u32("memo key")?;
                    self.put(k)?
                }
                MEMOIZE => self.put(self.memo.len() as u32)?,
                BINGET => {
                    let k = self.c.u8("memo key")?.into();
                    self.get(k)?
                }
                LONG_BINGET => {
                    let k = self.c.u32("memo key")?;
                    self.get(k)?
                }
                BINUNICODE => {
                    let n = self.c.u32("string length")?.into();
                    self.string(n)?
                }
                SHORT_BINUNICODE => {
                    let n = self.c.u8("string length")?.into();
                    self.string(n)?
                }
                BININT => {
                    let v = self.c.i32("int")?.into();
                    self.push(Value::Int(v))
                }
                BININT1 => {
                    let v = self.c.u8("int")?.into();
                    self.push(Value::Int(v))
                }
                BININT2 => {
                    let v = self.c.u16("int")?.into();
                    self.push(Value::Int(v))
                }
                LONG1 => self.long1()?,
                NEWTRUE => self.push(Value::Bool(true)),
                NEWFALSE => self.push(Value::Bool(false)),
                NONE => self.push(Value::None),
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items))
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(op - TUPLE1 + 1);
                    let items = self.pop_n(n)?;
                    self.push(Value::Tuple(items))
                }
                GLOBAL => {
                    let module = self.c.take_line("global module")?;
                    let name = self.c.take_line("global name")?;
                    let module = String::from_utf8_lossy(module);
                    let name = String::from_utf8_lossy(name);
                    let g = torch::resolve(&module, &name)?;
                    self.push(Value::Global(g))
                }
                STACK_GLOBAL => {
                    let name = self.pop_str()?;
                    let module = self.pop_str()?;
                    let g = torch::resolve(&module, &name)?;
                    self.push(Value::Global(g))
                }
                REDUCE => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = torch::reduce(self, func, args)?;
                    self.push(v)
                }
                BUILD => self.build()?,
                SETITEM => {
                    let pair = self.pop_n(2)?;
                    self.extend_dict(pair)?
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    self.extend_dict(items)?
                }
                APPEND => {
                    let item = self.pop_n(1)?;
                    self.extend_list(item)?
                }
                APPENDS => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?
                }
                BINPERSID => {
                    let pid = self.pop()?;
                    let v = torch::persistent_load(self, pid)?;
                    self.push(v)
                }
                BINFLOAT => {
                    // The one big-endian field in the pickle format.
                    let bytes = self.c.take(8, "float")?;
                    let mut be = [0u8; 8];
                    be.copy_from_slice(bytes);
                    self.push(Value::Float(f64::from_be_bytes(be)))
                }
                other => {
                    return Err(WeightError::PickleOpcode {
                        opcode: other,
                        name: opcodes::name(other),
                        offset: self.op_at,
                    })
                }
            }
        }
    }

    fn err(&self, reason: impl Into<String>) -> WeightError {
        WeightError::Pickle {
            offset: self.op_at,
            reason: reason.into(),
        }
    }

    fn push(&mut self, v: Value) {
        self.values.push(v);
        self.stack.push(self.values.len() - 1);
    }

    fn pop(&mut self) -> Result<Id> {
        // A MARK above the new top would now point past the stack: Python treats that as
        // corruption too.
        let id = self
            .stack
            .pop()
            .ok_or_else(|| self.err("stack underflow"))?;
        if self.marks.last().is_some_and(|&m| m > self.stack.len()) {
            return Err(self.err("pop below a mark"));
        }
        Ok(id)
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Id>> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() < floor + n {
            return Err(self.err(format!("needs {n} stack items")));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let mark = self.marks.pop().ok_or_else(|| self.err("no MARK"))?;
        if mark > self.stack.len() {
            return Err(self.err("MARK above the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn pop_str(&mut self) -> Result<String> {
        let id = self.pop()?;
        match &self.values[id] {
            Value::Str(s) => Ok(s.clone()),
            other => Err(self.err(format!("expected str, found {}", other.kind()))),
        }
    }

    /// The top of the stack, which must lie above the innermost MARK (as in Python, where a
    /// MARK starts a fresh stack).
    fn top(&self) -> Result<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(&id) if self.stack.len() > floor => Ok(id),
            _ => Err(self.err("empty stack")),
        }
    }

    fn put(&mut self, key: u32) -> Result<()> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn get(&mut self, key: u32) -> Result<()> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| self.err(format!("memo key {key} is not set")))?;
        self.stack.push(id);
        Ok(())
    }

    fn string(&mut self, len: u64) -> Result<()> {
        let bytes = self.c.take(len, "string")?;
        let s = std::str::from_utf8(bytes).map_err(|_| self.err("string is not UTF-8"))?;
        self.push(Value::Str(s.to_string()));
        Ok(())
    }

    fn long1(&mut self) -> Result<()> {
        let n = self.c.u8("long length")?;
        if n > 8 {
            return Err(self.err(format!("{n}-byte integer is too large")));
        }
        let bytes = self.c.take(n.into(), "long")?;
        // Two's complement little-endian: sign-extend from the top byte.
        let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
            0xFF
        } else {
            0
        };
        let mut le = [fill; 8];
        le[..bytes.len()].copy_from_slice(bytes);
        self.push(Value::Int(i64::from_le_bytes(le)));
        Ok(())
    }

    fn build(&mut self) -> Result<()> {
        let _state = self.pop()?;
        let obj = self.top()?;
        // OrderedDict state is its `_metadata` attribute (module versions); tensor state is
        // Python-side attributes. Neither affects the weights, so it is dropped.
        match &self.values[obj] {
            Value::Dict(_) | Value::Tensor(_) => Ok(()),
            other => Err(self.err(format!("BUILD on {}", other.kind()))),
        }
    }

    fn extend_dict(&mut self, items: Vec<Id>) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("odd number of dict items"));
        }
        let target = self.top()?;
        let Value::Dict(pairs) = &mut self.values[target] else {
            return Err(self.err("SETITEM(S) target is not a dict"));
        };
        pairs.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
        Ok(())
    }

    fn extend_list(&mut self, items: Vec<Id>) -> Result<()> {
        let target = self.top()?;
        let Value::List(list) = &mut self.values[target] else {
            return Err(self.err("APPEND(S) target is not a list"));
        };
        list.extend(items);
        Ok(())
    }
}
