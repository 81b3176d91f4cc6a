//! `openapi.yaml` itself, and the validator the other tests check answers with.

mod document;
