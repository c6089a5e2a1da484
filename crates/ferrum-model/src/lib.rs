//! Model files and architectures.

pub mod weights;
