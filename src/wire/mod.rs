//! What travels between `rcc` and `rccd`, independent of sockets: bytes in, bytes out.
//!
//! | file | job |
//! | --- | --- |
//! | [`protocol`] | the frames: kinds, version, size caps, one small parser and writer per message |
//! | [`discovery`] | the probe that finds the boxes on a LAN and a box's reply; a reply never longer than its probe |
//! | [`compress`] | the one user of miniz_oxide: deflate out, inflate in with a hard output limit |

pub mod compress;
pub mod discovery;
pub mod protocol;
