//! Frames to and from a daemon, spoken by hand as a peer would (a hostile one too): one
//! connection (`Peer`), from any loopback address, and the job requests a test starts from.

use rcc::wire::protocol::{self, JobRequest, Limits, Message, Mode};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

/// One connection to a daemon, frame by frame.
pub struct Peer {
    pub s: TcpStream,
    buf: Vec<u8>,
    /// Every byte the daemon sent so far.
    pub got: Vec<u8>,
}

/// How a conversation ended without a frame.
#[derive(Debug)]
pub enum Ended {
    /// The daemon closed (or reset) the connection.
    Closed,
    /// Nothing within the read timeout.
    Hung,
    /// Bytes that are no frame.
    Garbage(protocol::Error),
    /// Any other read error.
    Failed(io::Error),
}

impl Peer {
    /// Connects to `addr`; each read waits at most `secs`.
    pub fn connect(addr: &str, secs: u64) -> Peer {
        Peer::over(TcpStream::connect(addr).unwrap(), secs)
    }

    /// Connects to `addr` from the loopback address `from` (127.0.0.2 and up are other
    /// peers to a daemon, and Linux routes them through `lo` like 127.0.0.1).
    pub fn connect_from(addr: &str, from: Ipv4Addr, secs: u64) -> Peer {
        Peer::over(connect_from(from, addr.parse().unwrap()), secs)
    }

    fn over(s: TcpStream, secs: u64) -> Peer {
        s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
        Peer {
            s,
            buf: Vec::new(),
            got: Vec::new(),
        }
    }

    /// Writes `bytes` as they are: frames made by hand, broken ones, several at once.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.s.write_all(bytes)
    }

    /// Sends one frame, uncompressed; the daemon must take it.
    pub fn send(&mut self, msg: &Message) {
        self.write(&protocol::encode(msg, None))
            .unwrap_or_else(|e| panic!("sending {:?}: {e}", msg.kind()));
    }

    /// The next frame, whatever it is.
    pub fn frame(&mut self) -> Result<Message, Ended> {
        let mut chunk = [0u8; 65536];
        loop {
            match protocol::decode(&self.buf, &Limits::default()) {
                Ok(Some((m, used))) => {
                    self.buf.drain(..used);
                    return Ok(m);
                }
                Ok(None) => {}
                Err(e) => return Err(Ended::Garbage(e)),
            }
            match self.s.read(&mut chunk) {
                Ok(0) => return Err(Ended::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.got.extend_from_slice(&chunk[..n]);
                }
                // A read with a timeout may end early with EINTR (signal(7)).
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(Ended::Closed),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Ended::Hung)
                }
                Err(e) => return Err(Ended::Failed(e)),
            }
        }
    }

    /// The next frame other than `Progress`, the heartbeat of a long compile.
    pub fn next(&mut self) -> Result<Message, Ended> {
        loop {
            match self.frame()? {
                Message::Progress => {}
                m => return Ok(m),
            }
        }
    }
}

/// A TCP connection to `to` from the local address `from` (std connects only from the
/// address the kernel picks).
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let SocketAddr::V4(to) = to else {
        panic!("{to} is not IPv4")
    };
    // Close-on-exec: the tests share one process, and a daemon another test starts must not
    // hold this connection open after the test closed it.
    // SAFETY: socket() takes no pointers; the fd it returns is owned by `stream` from here
    // on, so it is closed even if bind or connect fails.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: `fd` is a fresh socket nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let (here, there) = (sin(from, 0), sin(*to.ip(), to.port()));
    // SAFETY: both addresses are live sockaddr_in values of `len` bytes.
    let rc = unsafe { libc::bind(fd, (&here as *const libc::sockaddr_in).cast(), len) };
    assert_eq!(rc, 0, "bind {from}: {}", io::Error::last_os_error());
    // SAFETY: as above.
    let rc = unsafe { libc::connect(fd, (&there as *const libc::sockaddr_in).cast(), len) };
    assert_eq!(
        rc,
        0,
        "connect {from} -> {to}: {}",
        io::Error::last_os_error()
    );
    stream
}

/// The identity of the master's /usr/bin/gcc, which the box's gcc has (probed once).
pub fn gcc_identity() -> String {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| rcc::compiler::probe_identity(Path::new("/usr/bin/gcc")).unwrap())
        .clone()
}

/// A preprocessed job for the box's `compiler` with `args`, as the master's gcc, from /tmp.
pub fn job_request(compiler: &str, args: &[&[u8]]) -> JobRequest {
    JobRequest {
        mode: Mode::Preprocessed,
        compress: false,
        compiler: compiler.into(),
        identity: gcc_identity(),
        args: args.iter().map(|a| a.to_vec()).collect(),
        input_ext: "i".into(),
        output_ext: "o".into(),
        cwd: b"/tmp".to_vec(),
        label: "test.c".into(),
        locale: vec![],
    }
}

/// Writes `bytes` to `s` one at a time, `every` apart, from another thread. The thread ends
/// early, with `true`, once a write fails (the daemon closed).
pub fn trickle(s: &TcpStream, bytes: Vec<u8>, every: Duration) -> JoinHandle<bool> {
    let mut w = s.try_clone().unwrap();
    std::thread::spawn(move || {
        for b in bytes {
            if w.write_all(&[b]).is_err() {
                return true;
            }
            std::thread::sleep(every);
        }
        false
    })
}
