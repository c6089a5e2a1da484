//! The bytes of a checkpoint file and a bounds-checked little-endian cursor over them.
//!
//! Invariants:
//! - Every read goes through [`Cursor`], which checks the length against what is left before
//!   slicing, so a lying count or length in a file becomes [`WeightError::Truncated`], never a
//!   panic.
//! - Callers bound element counts read from a file with [`Cursor::bound_count`] before they
//!   allocate, so a hostile count cannot make us reserve more memory than the file could fill.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::Mmap;

use super::error::{Result, WeightError};

/// Whole-file contents: a read-only memory map, or owned bytes (tests, fuzzing, empty files).
pub enum FileBytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl FileBytes {
    /// Maps `path` read-only.
    pub fn map(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| WeightError::io(path, e))?;
        let len = file.metadata().map_err(|e| WeightError::io(path, e))?.len();
        if len == 0 {
            // Mapping an empty file fails on some platforms; an empty buffer parses the same.
            return Ok(FileBytes::Owned(Vec::new()));
        }
        // SAFETY: the map is read-only and we never hand out `&mut`. Like every mmap-based
        // checkpoint reader we rely on the file not being truncated or rewritten while it is
        // mapped; a checkpoint directory is not modified under a running server.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| WeightError::io(path, e))?;
        Ok(FileBytes::Mapped(map))
    }
}

impl Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}

/// A forward-only reader over a byte slice; every read is checked against the remaining length.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    format: &'static str,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], format: &'static str) -> Self {
        Cursor {
            buf,
            pos: 0,
            format,
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn truncated(&self, what: &str, needed: u64) -> WeightError {
        WeightError::Truncated {
            format: self.format,
            what: what.to_string(),
            offset: self.pos as u64,
            needed,
            len: self.buf.len() as u64,
        }
    }

    /// The next `n` bytes, or `Truncated` when fewer are left.
    pub fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() as u64 {
            return Err(self.truncated(what, n));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// Bytes up to the next `\n` (which is consumed but not returned).
    pub fn take_line(&mut self, what: &str) -> Result<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            None => Err(self.truncated(what, rest.len() as u64 + 1)),
        }
    }

    /// Checks that `count` items of at least `min_item_bytes` each can fit in what is left, and
    /// returns it as a `usize` that is then safe to pre-allocate.
    pub fn bound_count(&self, count: u64, min_item_bytes: u64, what: &str) -> Result<usize> {
        let needed = count.saturating_mul(min_item_bytes.max(1));
        if needed > self.remaining() as u64 {
            return Err(self.truncated(what, needed));
        }
        Ok(count as usize)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16> {
        self.array(what).map(u16::from_le_bytes)
    }
    pub fn u32(&mut self, what: &str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }
    pub fn u64(&mut self, what: &str) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }
    pub fn i8(&mut self, what: &str) -> Result<i8> {
        self.array(what).map(i8::from_le_bytes)
    }
    pub fn i16(&mut self, what: &str) -> Result<i16> {
        self.array(what).map(i16::from_le_bytes)
    }
    pub fn i32(&mut self, what: &str) -> Result<i32> {
        self.array(what).map(i32::from_le_bytes)
    }
    pub fn i64(&mut self, what: &str) -> Result<i64> {
        self.array(what).map(i64::from_le_bytes)
    }
    pub fn f32(&mut self, what: &str) -> Result<f32> {
        self.array(what).map(f32::from_le_bytes)
    }
    pub fn f64(&mut self, what: &str) -> Result<f64> {
        self.array(what).map(f64::from_le_bytes)
    }
}

/// `offset..offset + len` of `buf` when it lies inside, else `None` (no overflow, no panic).
pub fn slice_at(buf: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let end = offset.checked_add(len)?;
    if end > buf.len() as u64 {
        return None;
    }
    Some(&buf[offset as usize..end as usize])
}
