//! Request types and their parsing: lenient about unknown fields, exact about known ones.

pub mod fields;
pub mod messages;
pub mod parse;
