//! Dense item vectors from `.npy` + id list or TSV.
