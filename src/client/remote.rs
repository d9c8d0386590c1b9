//! One exchange with a box: connect (short timeout), hello, wait for accept, send the input,
//! wait for the result while the box's heartbeats say it is alive. Every way this can go
//! wrong comes back as a `Failure` the caller can act on (try another box, back off, go local).

use crate::wire::protocol::{self, Accept, Done, JobRequest, Limits, Message, Reject};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Timeouts for talking to a box.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting: a box on the LAN answers in a millisecond; a dead one never does.
    pub connect: Duration,
    /// Silence: the box sends a heartbeat every two seconds while it compiles, so this long
    /// without a byte means the box or the network is gone. A slow compile is never cut.
    pub io: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            io: Duration::from_secs(20),
        }
    }
}

/// Why a box did not give us a result.
#[derive(Debug)]
pub enum Failure {
    /// Could not connect (refused, unreachable, timed out, bad address).
    Connect(String),
    /// The box said no, with its reason.
    Rejected(Reject),
    /// The connection broke, timed out, or carried something that is not the protocol.
    Broken(String),
    /// A file to ship could not be read as announced (it changed during the job): the job,
    /// not the box.
    Source(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "cannot connect: {e}"),
            Failure::Rejected(r) => write!(f, "refused the job ({}): {}", r.reason.name(), r.text),
            Failure::Broken(e) | Failure::Source(e) => write!(f, "{e}"),
        }
    }
}

/// Bytes moved, for `RCC_VERBOSE`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    pub sent: usize,
    pub received: usize,
}

/// A connection to a box that has accepted a job and waits for its input.
pub struct Accepted {
    /// What the box said about its slots as it accepted.
    pub accept: Accept,
    stream: TcpStream,
    /// Whether the box asked for compressed bodies, at what level, and the compressor.
    compress: bool,
    level: u8,
    deflater: Option<crate::wire::compress::Deflater>,
    pub traffic: Traffic,
}

fn broken(e: io::Error, during: &str) -> Failure {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            Failure::Broken(format!("no answer while {during} (box or network gone?)"))
        }
        io::ErrorKind::UnexpectedEof => {
            Failure::Broken(format!("connection closed while {during}"))
        }
        _ => Failure::Broken(format!("connection failed while {during}: {e}")),
    }
}

/// Connects to `addr` ("host:port").
pub fn connect(addr: &str, timeouts: Timeouts) -> Result<TcpStream, Failure> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| Failure::Connect(format!("{addr}: {e}")))?
        .collect();
    let mut last = format!("{addr}: no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeouts.connect) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                s.set_read_timeout(Some(timeouts.io))
                    .and_then(|_| s.set_write_timeout(Some(timeouts.io)))
                    .map_err(|e| Failure::Connect(e.to_string()))?;
                return Ok(s);
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(Failure::Connect(last))
}

/// Reads one frame, skipping heartbeats.
fn read_frame(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    traffic: &mut Traffic,
    during: &str,
) -> Result<Message, Failure> {
    // The client accepts objects as large as a box may send.
    let limits = Limits {
        max_body: 1 << 30,
        ..Limits::default()
    };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match protocol::decode(buf, &limits) {
            Ok(Some((Message::Progress, used))) => {
                buf.drain(..used);
                continue;
            }
            Ok(Some((msg, used))) => {
                buf.drain(..used);
                return Ok(msg);
            }
            Ok(None) => {}
            Err(e) => return Err(Failure::Broken(format!("garbage from the box: {e}"))),
        }
        let n = stream.read(&mut chunk).map_err(|e| broken(e, during))?;
        if n == 0 {
            return Err(Failure::Broken(format!("connection closed while {during}")));
        }
        traffic.received += n;
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends the hello and waits for the box to accept the job.
/// `level` is the deflate level of what the client sends, when the request asks to compress.
pub fn request(
    addr: &str,
    req: &JobRequest,
    timeouts: Timeouts,
    level: u8,
) -> Result<Accepted, Failure> {
    let mut stream = connect(addr, timeouts)?;
    let mut traffic = Traffic::default();
    let hello = protocol::encode(&Message::JobRequest(req.clone()), None);
    stream
        .write_all(&hello)
        .map_err(|e| broken(e, "sending the request"))?;
    traffic.sent += hello.len();
    let mut buf = Vec::new();
    match read_frame(
        &mut stream,
        &mut buf,
        &mut traffic,
        "waiting for the box to accept",
    )? {
        Message::Accept(accept) => Ok(Accepted {
            accept,
            stream,
            compress: req.compress,
            level,
            deflater: None,
            traffic,
        }),
        Message::Reject(r) => Err(Failure::Rejected(r)),
        other => Err(Failure::Broken(format!(
            "unexpected {:?} frame instead of accept",
            other.kind()
        ))),
    }
}

/// How much input travels in one frame: large enough that headers and per-piece
/// compression cost nothing, small enough that the box writes while the rest is still being
/// made.
pub const PIECE: usize = 256 * 1024;

impl Accepted {
    /// Sends one piece of the input (compressed on its own when the host asks for it).
    pub fn send_piece(&mut self, piece: &[u8]) -> Result<(), Failure> {
        self.send_body(protocol::Kind::Input, piece, "sending the input")
    }

    /// Sends one frame whose body is `body`, compressed on its own when the host asks for it.
    fn send_body(
        &mut self,
        kind: protocol::Kind,
        body: &[u8],
        during: &str,
    ) -> Result<(), Failure> {
        self.send_frame(kind, body, self.compress, during)
    }

    /// Sends one frame whose body is `body`, compressed if `compress`.
    fn send_frame(
        &mut self,
        kind: protocol::Kind,
        body: &[u8],
        compress: bool,
        during: &str,
    ) -> Result<(), Failure> {
        let level = self.level;
        let payload = match compress {
            // Made on first use: a job whose box has every file sends nothing compressed.
            true => self
                .deflater
                .get_or_insert_with(|| crate::wire::compress::Deflater::new(level))
                .compress(body),
            false => body,
        };
        let header = protocol::header(kind, compress, payload.len());
        self.stream
            .write_all(&header)
            .and_then(|_| self.stream.write_all(payload))
            .map_err(|e| broken(e, during))?;
        self.traffic.sent += header.len() + payload.len();
        Ok(())
    }

    /// Says the input is complete and waits for the result.
    pub fn finish(mut self) -> Result<(Done, Traffic), Failure> {
        let end = protocol::encode(&Message::InputEnd, None);
        self.stream
            .write_all(&end)
            .map_err(|e| broken(e, "sending the input"))?;
        self.traffic.sent += end.len();
        let mut buf = Vec::new();
        let msg = read_frame(
            &mut self.stream,
            &mut buf,
            &mut self.traffic,
            "waiting for the compile",
        )?;
        match msg {
            Message::Done(d) => Ok((d, self.traffic)),
            Message::Reject(r) => Err(Failure::Rejected(r)),
            other => Err(Failure::Broken(format!(
                "unexpected {:?} frame instead of a result",
                other.kind()
            ))),
        }
    }

    /// Ships a job's sources: the manifest, then the content of each file the box asks for
    /// (`content(i)` reads manifest file `i`), then waits for the result. Returns how many
    /// files the box needed with the result.
    pub fn ship(
        mut self,
        manifest: &[u8],
        mut content: impl FnMut(usize) -> io::Result<Vec<u8>>,
    ) -> Result<(Done, Traffic, usize), Failure> {
        // Uncompressed: mostly hashes (see `protocol::manifest_body`).
        self.send_frame(
            protocol::Kind::Manifest,
            manifest,
            false,
            "sending the manifest",
        )?;
        let mut buf = Vec::new();
        let need = match read_frame(
            &mut self.stream,
            &mut buf,
            &mut self.traffic,
            "waiting for the box to say what it lacks",
        )? {
            Message::Need(v) => v,
            Message::Reject(r) => return Err(Failure::Rejected(r)),
            other => {
                return Err(Failure::Broken(format!(
                    "unexpected {:?} frame instead of the files needed",
                    other.kind()
                )))
            }
        };
        for &i in &need {
            let data = content(i as usize).map_err(|e| Failure::Source(e.to_string()))?;
            let body = protocol::body(&Message::Blob(i, data));
            self.send_body(protocol::Kind::Blob, &body, "sending the sources")?;
        }
        let needed = need.len();
        self.finish().map(|(d, t)| (d, t, needed))
    }

    /// Sends a whole input and waits for the result.
    pub fn compile(mut self, input: &[u8]) -> Result<(Done, Traffic), Failure> {
        for piece in input.chunks(PIECE) {
            self.send_piece(piece)?;
        }
        self.finish()
    }
}

/// Asks a box for its status.
pub fn status(addr: &str, timeouts: Timeouts) -> Result<Vec<(String, String)>, Failure> {
    let mut stream = connect(addr, timeouts)?;
    let mut traffic = Traffic::default();
    stream
        .write_all(&protocol::encode(&Message::StatusRequest, None))
        .map_err(|e| broken(e, "asking for status"))?;
    let mut buf = Vec::new();
    match read_frame(&mut stream, &mut buf, &mut traffic, "waiting for status")? {
        Message::Status(kv) => Ok(kv),
        Message::Reject(r) => Err(Failure::Rejected(r)),
        other => Err(Failure::Broken(format!(
            "unexpected {:?} frame instead of status",
            other.kind()
        ))),
    }
}
