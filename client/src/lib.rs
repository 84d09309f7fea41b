//! revkv client.
