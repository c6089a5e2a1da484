//! Just enough of the zip format to read a `torch.save` archive: the (zip64) end-of-central-
//! directory record, central directory entries, and local headers of stored entries.
//!
//! Invariants:
//! - The entry count is bounded by the central directory's size before anything is allocated.
//! - An entry's data range is resolved through its local header and checked against the file;
//!   compressed or encrypted entries are listed but refused when their data is asked for.

use std::ops::Range;

use super::bytes::{slice_at, Cursor};
use super::error::{Result, WeightError};

const FORMAT: &str = "zip";
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const CENTRAL_LEN: u64 = 46;
const LOCAL_LEN: u64 = 30;

/// One file in the archive.
#[derive(Debug, Clone)]
pub struct ZipEntry {
    pub name: String,
    /// 0 = stored; anything else is refused by [`ZipEntry::data`].
    pub method: u16,
    encrypted: bool,
    local_offset: u64,
    compressed_size: u64,
}

impl ZipEntry {
    /// The entry's bytes inside `archive` (stored entries only).
    pub fn data<'a>(&self, archive: &'a [u8]) -> Result<&'a [u8]> {
        let r = self.range(archive)?;
        Ok(&archive[r])
    }

    /// Where the entry's bytes lie inside `archive` (stored entries only); always in bounds.
    pub fn range(&self, archive: &[u8]) -> Result<Range<usize>> {
        if self.method != 0 || self.encrypted {
            return Err(WeightError::CompressedEntry {
                entry: self.name.clone(),
                method: if self.encrypted { 99 } else { self.method },
            });
        }
        let header = slice_at(archive, self.local_offset, LOCAL_LEN)
            .ok_or_else(|| out_of_bounds(&self.name, self.local_offset, LOCAL_LEN, archive))?;
        let mut c = Cursor::new(header, FORMAT);
        if c.u32("local header")? != LOCAL_SIG {
            return Err(WeightError::header(
                FORMAT,
                format!("entry {}: bad local header", self.name),
            ));
        }
        c.take(22, "local header fields")?;
        let name_len = u64::from(c.u16("name length")?);
        let extra_len = u64::from(c.u16("extra length")?);
        let start = self.local_offset + LOCAL_LEN + name_len + extra_len;
        match slice_at(archive, start, self.compressed_size) {
            Some(_) => Ok(start as usize..(start + self.compressed_size) as usize),
            None => Err(out_of_bounds(
                &self.name,
                start,
                self.compressed_size,
                archive,
            )),
        }
    }
}

fn out_of_bounds(name: &str, start: u64, len: u64, archive: &[u8]) -> WeightError {
    WeightError::OutOfBounds {
        tensor: format!("zip entry {name}"),
        start,
        end: start.saturating_add(len),
        len: archive.len() as u64,
    }
}

/// Reads the central directory of `archive`.
pub fn entries(archive: &[u8]) -> Result<Vec<ZipEntry>> {
    let eocd = find_eocd(archive)?;
    let mut c = Cursor::new(&archive[eocd..], FORMAT);
    c.take(10, "end of central directory")?;
    let mut count = u64::from(c.u16("entry count")?);
    let mut cd_size = u64::from(c.u32("central directory size")?);
    let mut cd_offset = u64::from(c.u32("central directory offset")?);
    if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
        (count, cd_size, cd_offset) = read_zip64_eocd(archive, eocd)?;
    }
    let cd = slice_at(archive, cd_offset, cd_size).ok_or_else(|| WeightError::Truncated {
        format: FORMAT,
        what: "central directory".into(),
        offset: cd_offset,
        needed: cd_size,
        len: archive.len() as u64,
    })?;
    let mut c = Cursor::new(cd, FORMAT);
    let count = c.bound_count(count, CENTRAL_LEN, "central directory entries")?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(read_central_entry(&mut c)?);
    }
    Ok(out)
}

/// Position of the end-of-central-directory record, searched backwards over a possible comment.
fn find_eocd(archive: &[u8]) -> Result<usize> {
    if archive.len() < EOCD_LEN {
        return Err(WeightError::BadMagic {
            format: FORMAT,
            found: format!("{} byte file", archive.len()),
        });
    }
    let last = archive.len() - EOCD_LEN;
    let first = last.saturating_sub(u16::MAX as usize);
    (first..=last)
        .rev()
        .find(|&i| archive[i..i + 4] == EOCD_SIG.to_le_bytes())
        .ok_or_else(|| WeightError::BadMagic {
            format: FORMAT,
            found: "no end of central directory record".into(),
        })
}

fn read_zip64_eocd(archive: &[u8], eocd: usize) -> Result<(u64, u64, u64)> {
    let locator = eocd
        .checked_sub(20)
        .and_then(|at| archive.get(at..eocd))
        .ok_or_else(|| WeightError::header(FORMAT, "zip64 locator missing"))?;
    let mut c = Cursor::new(locator, FORMAT);
    if c.u32("zip64 locator")? != ZIP64_LOCATOR_SIG {
        return Err(WeightError::header(FORMAT, "zip64 locator missing"));
    }
    c.u32("disk")?;
    let at = c.u64("zip64 record offset")?;
    let record = slice_at(archive, at, 56)
        .ok_or_else(|| WeightError::header(FORMAT, "zip64 record out of bounds"))?;
    let mut c = Cursor::new(record, FORMAT);
    if c.u32("zip64 record")? != ZIP64_EOCD_SIG {
        return Err(WeightError::header(FORMAT, "bad zip64 record signature"));
    }
    c.take(28, "zip64 record fields")?;
    let count = c.u64("entry count")?;
    let size = c.u64("central directory size")?;
    let offset = c.u64("central directory offset")?;
    Ok((count, size, offset))
}

fn read_central_entry(c: &mut Cursor<'_>) -> Result<ZipEntry> {
    if c.u32("central directory entry")? != CENTRAL_SIG {
        return Err(WeightError::header(
            FORMAT,
            "bad central directory signature",
        ));
    }
    c.take(4, "versions")?;
    let flags = c.u16("flags")?;
    let method = c.u16("method")?;
    c.take(8, "time, date, crc")?;
    let mut compressed_size = u64::from(c.u32("compressed size")?);
    let uncompressed = c.u32("uncompressed size")?;
    let name_len = u64::from(c.u16("name length")?);
    let extra_len = u64::from(c.u16("extra length")?);
    let comment_len = u64::from(c.u16("comment length")?);
    c.take(8, "disk, attributes")?;
    let mut local_offset = u64::from(c.u32("local header offset")?);
    let name = String::from_utf8_lossy(c.take(name_len, "entry name")?).into_owned();
    let mut extra = Cursor::new(c.take(extra_len, "extra field")?, FORMAT);
    c.take(comment_len, "entry comment")?;
    // Zip64 extended information: the 64-bit values of the fields saturated above, in order.
    while extra.remaining() >= 4 {
        let id = extra.u16("extra id")?;
        let size = u64::from(extra.u16("extra size")?);
        let mut field = Cursor::new(extra.take(size, "extra data")?, FORMAT);
        if id != 1 {
            continue;
        }
        if uncompressed == u32::MAX {
            field.u64("zip64 uncompressed size")?;
        }
        if compressed_size == u64::from(u32::MAX) {
            compressed_size = field.u64("zip64 compressed size")?;
        }
        if local_offset == u64::from(u32::MAX) {
            local_offset = field.u64("zip64 local header offset")?;
        }
    }
    Ok(ZipEntry {
        name,
        method,
        encrypted: flags & 1 != 0,
        local_offset,
        compressed_size,
    })
}
