//! Synthetic sessions with a planted feature signal.
