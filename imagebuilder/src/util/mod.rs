//! Small mechanisms every stage uses: the one way to run programs ([`cmd`]), atomic files and
//! bounded input reading ([`fsutil`]), and the cleanup registry that undoes a build on a signal
//! ([`cleanup`]).

pub mod cleanup;
pub mod cmd;
pub mod fsutil;
