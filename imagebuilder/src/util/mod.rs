//! Small mechanisms every stage uses: the one way to run programs ([`cmd`]), atomic files and
//! bounded input reading ([`fsutil`]), digests ([`digest`]), and the cleanup registry that undoes a build on a signal
//! ([`cleanup`]).

pub mod cleanup;
pub mod cmd;
pub mod digest;
pub mod fsutil;
