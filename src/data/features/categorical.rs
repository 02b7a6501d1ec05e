//! Categorical item columns as one-hot / multi-hot sparse rows.
