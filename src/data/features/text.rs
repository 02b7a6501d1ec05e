//! TF-IDF over item text.
