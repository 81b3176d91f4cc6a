//! The test kit (feature `testing`): fakes of restop's outside world for the integration
//! tests and the benchmarks. A fake AWS, moto (the AWS emulator, with the patches of
//! tests/moto/launcher.py), a fake SNS that signs with a key of its own and serves its
//! certificate, and executions made the way the SNS endpoint makes them.

pub mod events;
pub mod fake_aws;
pub mod moto;
pub mod sns;
