//! How a layer's state is held: counted by an `Arc` (the default), or for the rest of the
//! program (opt-in, for layers built once at startup: no refcount per call).

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

pub(crate) enum SharedRef<T: 'static> {
    Counted(Arc<T>),
    Static(&'static T),
}

impl<T: 'static> SharedRef<T> {
    pub(crate) fn new(value: T, for_the_program: bool) -> Self {
        if for_the_program {
            Self::Static(Box::leak(Box::new(value)))
        } else {
            Self::Counted(Arc::new(value))
        }
    }
}

impl<T: 'static> Clone for SharedRef<T> {
    #[inline]
    fn clone(&self) -> Self {
        match self {
            Self::Counted(shared) => Self::Counted(Arc::clone(shared)),
            Self::Static(shared) => Self::Static(shared),
        }
    }
}

impl<T: 'static> Deref for SharedRef<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match self {
            Self::Counted(shared) => shared,
            Self::Static(shared) => shared,
        }
    }
}

impl<T: fmt::Debug + 'static> fmt::Debug for SharedRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}
