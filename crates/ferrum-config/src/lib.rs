//! Configuration structs.
