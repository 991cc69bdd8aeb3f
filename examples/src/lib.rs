//! Runnable examples and integration tests for the family.
