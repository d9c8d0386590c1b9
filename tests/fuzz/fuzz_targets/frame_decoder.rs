//! Whatever arrives on port 3633: frames are decoded one after another as the daemon does,
//! within its caps; decoding never panics, never returns more than the caps allow, and what
//! decodes re-encodes to a frame that decodes to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rcc::wire::protocol::{self, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_body: 1 << 20,
        max_small: 64 << 10,
        max_args: 512,
        max_arg_len: 4096,
    };
    let mut rest = data;
    for _ in 0..64 {
        match protocol::decode(rest, &limits) {
            Ok(Some((msg, used))) => {
                assert!(used >= protocol::HEADER_LEN && used <= rest.len());
                let again = protocol::encode(&msg, None);
                let big = Limits {
                    max_body: usize::MAX >> 1,
                    max_small: usize::MAX >> 1,
                    max_args: usize::MAX,
                    max_arg_len: usize::MAX,
                };
                match protocol::decode(&again, &big) {
                    Ok(Some((back, n))) => {
                        assert_eq!(n, again.len());
                        assert_eq!(back, msg);
                    }
                    other => panic!("re-encoded {msg:?} decodes as {other:?}"),
                }
                rest = &rest[used..];
            }
            Ok(None) | Err(_) => break,
        }
    }
});
