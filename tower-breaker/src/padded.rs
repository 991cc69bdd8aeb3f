//! A value alone on its cache line(s), so writes to it do not slow readers of its neighbours.

/// A value alone on its cache line(s).
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
