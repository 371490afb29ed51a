//! data-driven cases
