//! A minimal reader for SentencePiece's `ModelProto` (the `tokenizer.model` file).
//!
//! Invariants:
//! - Only the fields the tokenizer needs are decoded; every other field is skipped by wire type,
//!   so files from newer SentencePiece versions still load.
//! - Absent fields take the defaults written in `sentencepiece_model.proto`.
//! - Malformed input is an error, never a panic: every length is checked against the buffer.

use crate::error::{Result, TokenizerError};
use crate::piece::PieceKind;
use crate::sentencepiece::SpmPiece;

/// `TrainerSpec.model_type` values.
pub(crate) const MODEL_TYPE_UNIGRAM: i32 = 1;
pub(crate) const MODEL_TYPE_BPE: i32 = 2;

/// The parts of a `ModelProto` the tokenizer uses.
#[derive(Debug, Clone)]
pub(crate) struct SpModel {
    pub pieces: Vec<SpmPiece>,
    pub trainer: TrainerSpec,
    pub normalizer: NormalizerSpec,
}

#[derive(Debug, Clone)]
pub(crate) struct TrainerSpec {
    pub model_type: i32,
    pub byte_fallback: bool,
    pub unk_id: i32,
    pub bos_id: i32,
    pub eos_id: i32,
    pub pad_id: i32,
}

#[derive(Debug, Clone)]
pub(crate) struct NormalizerSpec {
    pub name: String,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
}

impl Default for TrainerSpec {
    fn default() -> Self {
        Self {
            model_type: MODEL_TYPE_UNIGRAM,
            byte_fallback: false,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
        }
    }
}

impl Default for NormalizerSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// One decoded field: its number and payload.
enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed(what: &str) -> TokenizerError {
    TokenizerError::SentencePiece(format!("malformed protobuf: {what}"))
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| malformed("field runs past the end"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("varint longer than 10 bytes"))
    }

    /// The next field, or `None` at the end of the buffer.
    fn field(&mut self) -> Result<Option<(u64, Wire<'a>)>> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| malformed("length"))?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                let bytes = self.take(4)?;
                Wire::Fixed32(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            }
            other => return Err(malformed(&format!("unsupported wire type {other}"))),
        };
        Ok(Some((key >> 3, wire)))
    }
}

/// protobuf `int32` fields carry negative values as 64-bit two's complement.
fn as_i32(value: u64) -> i32 {
    value as i64 as i32
}

fn utf8(bytes: &[u8], what: &str) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed(&format!("{what} is not UTF-8")))
}

impl SpModel {
    pub(crate) fn parse(buf: &[u8]) -> Result<Self> {
        let mut model = Self {
            pieces: Vec::new(),
            trainer: TrainerSpec::default(),
            normalizer: NormalizerSpec::default(),
        };
        let mut reader = Reader::new(buf);
        while let Some((number, wire)) = reader.field()? {
            match (number, wire) {
                (1, Wire::Bytes(bytes)) => model.pieces.push(parse_piece(bytes)?),
                (2, Wire::Bytes(bytes)) => model.trainer = parse_trainer(bytes)?,
                (3, Wire::Bytes(bytes)) => model.normalizer = parse_normalizer(bytes)?,
                _ => {}
            }
        }
        if model.pieces.is_empty() {
            return Err(TokenizerError::SentencePiece(
                "the model has no pieces".into(),
            ));
        }
        Ok(model)
    }
}

fn parse_piece(buf: &[u8]) -> Result<SpmPiece> {
    let mut piece = SpmPiece {
        text: String::new(),
        score: 0.0,
        kind: PieceKind::Normal,
    };
    let mut reader = Reader::new(buf);
    while let Some((number, wire)) = reader.field()? {
        match (number, wire) {
            (1, Wire::Bytes(bytes)) => piece.text = utf8(bytes, "piece")?,
            (2, Wire::Fixed32(bits)) => piece.score = f32::from_bits(bits),
            (3, Wire::Varint(code)) => piece.kind = PieceKind::from_code(as_i32(code)),
            _ => {}
        }
    }
    Ok(piece)
}

fn parse_trainer(buf: &[u8]) -> Result<TrainerSpec> {
    let mut spec = TrainerSpec::default();
    let mut reader = Reader::new(buf);
    while let Some((number, wire)) = reader.field()? {
        if let Wire::Varint(value) = wire {
            match number {
                3 => spec.model_type = as_i32(value),
                35 => spec.byte_fallback = value != 0,
                40 => spec.unk_id = as_i32(value),
                41 => spec.bos_id = as_i32(value),
                42 => spec.eos_id = as_i32(value),
                43 => spec.pad_id = as_i32(value),
                _ => {}
            }
        }
    }
    Ok(spec)
}

fn parse_normalizer(buf: &[u8]) -> Result<NormalizerSpec> {
    let mut spec = NormalizerSpec::default();
    let mut reader = Reader::new(buf);
    while let Some((number, wire)) = reader.field()? {
        match (number, wire) {
            (1, Wire::Bytes(bytes)) => spec.name = utf8(bytes, "normalizer name")?,
            (2, Wire::Bytes(bytes)) => spec.precompiled_charsmap = bytes.to_vec(),
            (3, Wire::Varint(v)) => spec.add_dummy_prefix = v != 0,
            (4, Wire::Varint(v)) => spec.remove_extra_whitespaces = v != 0,
            (5, Wire::Varint(v)) => spec.escape_whitespaces = v != 0,
            _ => {}
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    #[test]
    fn reads_pieces_trainer_and_normalizer() {
        let mut piece = Vec::new();
        bytes_field(1, "▁the".as_bytes(), &mut piece);
        varint(2 << 3 | 5, &mut piece);
        piece.extend_from_slice(&(-3.5f32).to_bits().to_le_bytes());
        varint(3 << 3, &mut piece);
        varint(4, &mut piece);

        let mut trainer = Vec::new();
        varint(3 << 3, &mut trainer);
        varint(2, &mut trainer);
        varint(43 << 3, &mut trainer);
        varint(-1i64 as u64, &mut trainer);
        varint(35 << 3, &mut trainer);
        varint(1, &mut trainer);

        let mut normalizer = Vec::new();
        varint(3 << 3, &mut normalizer);
        varint(0, &mut normalizer);

        let mut model = Vec::new();
        bytes_field(1, &piece, &mut model);
        bytes_field(2, &trainer, &mut model);
        bytes_field(3, &normalizer, &mut model);
        // An unknown fixed64 field is skipped.
        varint(9 << 3 | 1, &mut model);
        model.extend_from_slice(&[0; 8]);

        let parsed = SpModel::parse(&model).expect("valid model");
        assert_eq!(parsed.pieces.len(), 1);
        assert_eq!(parsed.pieces[0].text, "▁the");
        assert_eq!(parsed.pieces[0].score, -3.5);
        assert_eq!(parsed.pieces[0].kind, PieceKind::UserDefined);
        assert_eq!(parsed.trainer.model_type, MODEL_TYPE_BPE);
        assert_eq!(parsed.trainer.pad_id, -1);
        assert!(parsed.trainer.byte_fallback);
        assert!(!parsed.normalizer.add_dummy_prefix);
        assert!(parsed.normalizer.remove_extra_whitespaces);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let mut model = Vec::new();
        bytes_field(1, b"abcdef", &mut model);
        model.truncate(model.len() - 2);
        assert!(SpModel::parse(&model).is_err());
    }
}
