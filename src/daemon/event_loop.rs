//! The poll side of rccd, and the only file that names mio: one thread, one `Poll` that
//! owns every listener, socket, compiler pipe and pidfd. It binds and accepts (the peer
//! allow-list and `--max-connections`), registers and deregisters, reads a socket when it
//! is readable and writes it while output is pending, drains a compiler's pipes, notices its
//! exit, and fires the timers (the poll timeout). What a connection says and what the
//! daemon answers is `conversation`'s; whether a job may run is `gate`'s.
//!
//! Discovery: beside the TCP listeners, one UDP socket per port (and address family) reads
//! probes and sends the replies `discovery` decides (`on_probes`).
//!
//! Tokens: listener `i` is `LISTEN_BASE + i`, discovery socket `i` is `UDP_BASE + i`;
//! connection slot `c` owns four tokens,
//! `4c` (socket), `4c+1` (compiler stdout), `4c+2` (stderr), `4c+3` (pidfd).

use super::admit::Slots;
use super::cache::Cache;
use super::config::Config;
use super::conn::{Conn, Phase};
use super::discovery::{self, Limiter};
use super::health::Watch;
use super::job::{self, Compilers, Pipe};
use super::memory::Memory;
use super::sources::IncludeVerdicts;
use super::startup;
use super::status::BoxIdentity;
use super::thermal::Thermal;
use super::tree::Mirrors;
use crate::sys;
use crate::wire::protocol::{Message, RejectReason};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::unix::pipe::Receiver;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

const LISTEN_BASE: usize = usize::MAX - 256;
const UDP_BASE: usize = LISTEN_BASE - 256;
/// Probes read per turn of the loop at most: a flood waits for the next turn, after the
/// connections' events (the socket's buffer, not the loop, absorbs the rest).
const PROBES_PER_TURN: usize = 64;
/// Datagrams read a second at most, whatever comes: a flood costs the loop a bounded amount
/// of CPU (the kernel drops what does not fit in the socket's buffer meanwhile).
const PROBES_PER_S: u32 = 1000;
const SOCK: usize = 0;
const OUT: usize = 1;
const ERR: usize = 2;
const PID: usize = 3;

fn token(conn: usize, what: usize) -> Token {
    Token(conn * 4 + what)
}

/// The daemon's state. The poll and the listeners are this file's alone; the rest is read
/// and changed by the conversation (`conversation`), admission (`gate`) and the box's
/// upkeep (`upkeep`), each an `impl Daemon` of its own file.
pub(super) struct Daemon {
    poll: Poll,
    listeners: Vec<TcpListener>,
    /// Discovery's sockets, and whether one had probes left unread at the last turn.
    udp: Vec<UdpSocket>,
    udp_pending: bool,
    /// This second's reads (`PROBES_PER_S`): when it started, how many so far.
    udp_window: (Instant, u32),
    /// The addresses the listeners are bound to (their ports read back).
    bound: Vec<SocketAddr>,
    pub(super) limiter: Limiter,
    pub(super) probes: discovery::Counters,
    /// What `status` says of discovery: on and where, or off and why.
    pub(super) discovery_state: String,
    pub(super) config: Config,
    /// Connections in a slab: a closed one's slot is kept in `free` for the next.
    pub(super) conns: Vec<Option<Conn<TcpStream>>>,
    free: Vec<usize>,
    live: usize,
    pub(super) slots: Slots,
    pub(super) compilers: Compilers,
    pub(super) identity: BoxIdentity,
    pub(super) started: Instant,
    /// Numbers job dirs.
    pub(super) seq: u64,
    pub(super) thermal: Thermal,
    pub(super) memory: Memory,
    /// Sources and headers by hash, for jobs that ship them (`None`: `--no-sources`, or
    /// it cannot be opened: `cache_error` says why).
    pub(super) cache: Option<Cache>,
    pub(super) cache_error: Option<String>,
    /// Ok, full or broken, and the last thing that went wrong on the box.
    pub(super) health: Watch,
    /// When a broken box may look again at what broke it.
    pub(super) next_look: Instant,
    pub(super) include_verdicts: IncludeVerdicts,
    /// The mirrors of finished sources jobs, kept for the next ones.
    pub(super) mirrors: Mirrors,
}

pub fn run(config: Config) -> io::Result<()> {
    let mut health = startup::prepare(&config)?;
    let poll = Poll::new()?;
    let listeners = listen(&poll, &config)?;
    startup::write_pid_file(&config)?;
    job::clean_stale(&config.temp_dir);
    let compilers = startup::find_compilers(&config, &mut health);
    let port = listeners[0].local_addr()?.port();
    let mut d = Daemon::new(poll, listeners, config, compilers, health);
    d.open_discovery();
    // Written once rccd answers on every socket, discovery's too.
    if let Some(p) = &d.config.port_file {
        startup::write_port_file(&d.config, p, port)?;
    }
    d.first_look();
    log::info!(
        "rccd {} serving {} slots",
        env!("CARGO_PKG_VERSION"),
        d.config.jobs
    );
    let result = d.serve();
    startup::log_totals(&d.slots.counters);
    // Dropping the connections kills running compilers and removes their dirs.
    d.conns.clear();
    startup::remove_pid_file(&d.config);
    result
}

/// Binds every `--listen` address and registers it with `poll`.
fn listen(poll: &Poll, config: &Config) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for (i, addr) in config.listen.iter().enumerate() {
        let mut l = TcpListener::bind(*addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        poll.registry()
            .register(&mut l, Token(LISTEN_BASE + i), Interest::READABLE)?;
        log::info!("listening on {}", l.local_addr()?);
        listeners.push(l);
    }
    Ok(listeners)
}

/// The IPv6 address a probe to a multicast group on interface `ifindex` is answered with:
/// a global or unique-local one, else the link-local one.
fn interface_v6(ifindex: u32) -> Option<std::net::IpAddr> {
    let addrs = sys::interfaces().ok()?;
    let mine = addrs
        .iter()
        .filter(|a| a.index == ifindex && a.addr.is_ipv6() && !a.addr.is_loopback());
    let link_local = |a: &&sys::IfAddr| match a.addr {
        std::net::IpAddr::V6(v) => v.segments()[0] & 0xffc0 == 0xfe80,
        _ => false,
    };
    mine.clone()
        .find(|a| !link_local(a))
        .or_else(|| mine.clone().find(link_local))
        .map(|a| a.addr)
}

/// A child's pipe made non-blocking (std hands blocking ones), through mio's pipe type: the
/// one way to set it without `unsafe` outside `sys`.
fn nonblocking(pipe: Pipe) -> io::Result<Pipe> {
    let r = Receiver::from(OwnedFd::from(pipe));
    r.set_nonblocking(true)?;
    Ok(Pipe::from(OwnedFd::from(r)))
}

impl Daemon {
    fn new(
        poll: Poll,
        listeners: Vec<TcpListener>,
        config: Config,
        compilers: Compilers,
        health: Watch,
    ) -> Daemon {
        // Without a temp dir to write in, no job runs: say that, not why the cache under it
        // failed too.
        let (cache, cache_error) = startup::open_cache(&config, health.writable());
        let d_thermal = config.thermal.clone();
        let (d_temp, d_jobs) = (config.temp_dir.clone(), config.jobs);
        let (d_meminfo, d_mem_floor) = (config.meminfo.clone(), config.job_mem_floor_kib);
        let bound = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        Daemon {
            poll,
            slots: Slots::new(config.jobs, config.queue),
            config,
            listeners,
            udp: Vec::new(),
            udp_pending: false,
            udp_window: (Instant::now(), 0),
            bound,
            limiter: Limiter::new(Instant::now()),
            probes: discovery::Counters::default(),
            discovery_state: "off (--no-discovery)".into(),
            conns: Vec::new(),
            free: Vec::new(),
            live: 0,
            compilers,
            identity: BoxIdentity::load(),
            started: Instant::now(),
            seq: 0,
            thermal: Thermal::new(d_thermal, Instant::now()),
            memory: Memory::new(d_meminfo, d_mem_floor),
            cache,
            cache_error,
            health,
            next_look: Instant::now(),
            include_verdicts: IncludeVerdicts::default(),
            mirrors: Mirrors::new(&d_temp, format!("rccd-{}", sys::getpid()), d_jobs),
        }
    }

    /// Polls until told to stop: events first, then the timers, at least once a second.
    fn serve(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        while !sys::stop_requested() {
            let mut timeout = self.config.heartbeat.min(std::time::Duration::from_secs(1));
            if self.udp_pending {
                timeout = timeout.min(self.probe_wait(Instant::now()));
            }
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                self.on_event(ev);
            }
            if std::mem::take(&mut self.udp_pending) {
                for i in 0..self.udp.len() {
                    self.on_probes(i);
                }
            }
            self.timers(Instant::now());
        }
        log::info!("stopping: killing running compilers");
        Ok(())
    }

    /// One event, by its token: a listener, a socket, a pipe or a pidfd.
    fn on_event(&mut self, ev: &Event) {
        let t = ev.token().0;
        if t >= LISTEN_BASE {
            return self.accept(t - LISTEN_BASE);
        }
        if t >= UDP_BASE {
            return self.on_probes(t - UDP_BASE);
        }
        let (c, what) = (t / 4, t % 4);
        if self.conns.get(c).map_or(true, |s| s.is_none()) {
            return; // an event for a connection already closed
        }
        match what {
            SOCK => {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.on_readable(c);
                }
                if ev.is_writable() && self.conns[c].is_some() {
                    self.flush(c);
                }
            }
            OUT | ERR => self.on_pipe(c, what == ERR),
            _ => self.on_exit(c),
        }
    }

    /// Accepts every connection waiting on listener `i` into a free slot of the slab.
    fn accept(&mut self, i: usize) {
        loop {
            let (mut stream, peer) = match self.listeners[i].accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of fds and the like: log and let the next event try again.
                    log::warn!("accept failed: {e}");
                    return;
                }
            };
            if self.turned_away(peer) {
                continue; // dropping the stream closes it
            }
            let c = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, token(c, SOCK), Interest::READABLE)
            {
                log::warn!("cannot register {peer}: {e}");
                self.free.push(c);
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.slots.counters.connections += 1;
            self.live += 1;
            self.conns[c] = Some(Conn::new(stream, peer, Instant::now()));
        }
    }

    /// Whether a new connection from `peer` is closed at once: not in `--allow`, or
    /// `--max-connections` are open (each counted, and logged while rare).
    fn turned_away(&mut self, peer: SocketAddr) -> bool {
        if !self.config.allow.permits(peer.ip()) {
            self.slots.counters.refused_peers += 1;
            let n = self.slots.counters.refused_peers;
            if n <= 10 || n.is_power_of_two() {
                log::warn!(
                    "refused {peer}: not in --allow ({n} refused so far); \
                     add its network with --allow CIDR if it should compile here"
                );
            }
            return true;
        }
        if self.live >= self.config.max_connections {
            self.slots.counters.over_limit += 1;
            let n = self.slots.counters.over_limit;
            if n <= 10 || n.is_power_of_two() {
                log::warn!(
                    "refused {peer}: {} connections open (--max-connections; {n} \
                     refused so far)",
                    self.live
                );
            }
            return true;
        }
        false
    }

    /// One UDP socket per port and address family the TCP listeners use, bound to that
    /// family's wildcard address so a broadcast reaches it (`discovery::answer_addr` then
    /// answers only for the addresses rccd listens on). One that cannot be bound is logged
    /// and left out: discovery is a convenience, never a reason not to serve.
    fn open_discovery(&mut self) {
        if !self.config.discovery {
            return;
        }
        let mut ports: Vec<SocketAddr> = Vec::new();
        for a in &self.bound {
            let any: SocketAddr = if a.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, a.port()).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, a.port()).into()
            };
            if !ports.contains(&any) {
                ports.push(any);
            }
        }
        let mut on = Vec::new();
        for any in ports {
            let sock = sys::udp_socket(any, true, false).map(UdpSocket::from_std);
            let i = self.udp.len();
            match sock {
                Ok(mut s) => match self.poll.registry().register(
                    &mut s,
                    Token(UDP_BASE + i),
                    Interest::READABLE,
                ) {
                    Ok(()) => {
                        self.udp.push(s);
                        on.push(format!("udp {any}"));
                    }
                    Err(e) => log::warn!("discovery: cannot watch udp {any}: {e}"),
                },
                Err(e) => {
                    log::warn!("discovery: cannot bind udp {any}: {e}; not answering probes there")
                }
            }
        }
        self.discovery_state = if on.is_empty() {
            "off (no UDP socket could be bound; see the log)".into()
        } else {
            log::info!("answering discovery probes on {}", on.join(", "));
            format!("on ({})", on.join(", "))
        };
    }

    /// How long until probes may be read again: now, or when this second's reads are spent,
    /// at the next second.
    fn probe_wait(&mut self, now: Instant) -> std::time::Duration {
        let (since, reads) = self.udp_window;
        let next = since + std::time::Duration::from_secs(1);
        if now >= next {
            self.udp_window = (now, 0);
            return std::time::Duration::ZERO;
        }
        if reads < PROBES_PER_S {
            std::time::Duration::ZERO
        } else {
            next - now
        }
    }

    /// Reads up to `PROBES_PER_TURN` datagrams from discovery socket `i` (fewer once this
    /// second's `PROBES_PER_S` are spent) and answers those `discovery` says to; more left
    /// are read at a later turn (`udp_pending`).
    fn on_probes(&mut self, i: usize) {
        let mut buf = [0u8; crate::wire::discovery::MAX_DATAGRAM];
        for _ in 0..PROBES_PER_TURN {
            if !self.probe_wait(Instant::now()).is_zero() {
                break;
            }
            self.udp_window.1 += 1;
            let got = match sys::recv_to(&self.udp[i], &mut buf) {
                Ok(g) => g,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error a reply earned (the client had gone): read, and on.
                Err(e) => {
                    log::debug!("discovery: {e}");
                    continue;
                }
            };
            self.probes.probes += 1;
            if let Some((reply, from)) = self.on_probe(&buf[..got.len], got) {
                // From the address it names (the client checks). A full send buffer drops
                // the reply: the client asks again at the next build.
                if let Err(e) = sys::send_from(&self.udp[i], &reply, got.from, from) {
                    log::debug!("discovery: cannot answer {}: {e}", got.from);
                }
            }
        }
        self.udp_pending = true;
    }

    /// The reply to one datagram, if it gets one (see `discovery`), and the address it is
    /// sent from.
    fn on_probe(
        &mut self,
        bytes: &[u8],
        got: sys::Received,
    ) -> Option<(Vec<u8>, std::net::IpAddr)> {
        let src = got.from.ip();
        if !self.config.allow.permits(src) {
            self.probes.refused += 1;
            return None;
        }
        // A client probes from an ephemeral port; a "probe" from a service's port (echo,
        // chargen, DNS) is a spoofed one that would make two servers talk to each other.
        let probe = match crate::wire::discovery::decode_probe(bytes) {
            Ok(p) if !got.truncated && got.from.port() >= 1024 => p,
            _ => {
                self.probes.ignored += 1;
                return None;
            }
        };
        if !self.limiter.allow(src, Instant::now()) {
            self.probes.limited += 1;
            return None;
        }
        let local = match got.local? {
            std::net::IpAddr::V6(m) if m.is_multicast() => interface_v6(got.ifindex)?,
            l => l,
        };
        let Some(addr) = discovery::answer_addr(&self.bound, local) else {
            self.probes.ignored += 1;
            return None;
        };
        let kv = discovery::reply_pairs(addr, &self.advert_kv());
        let reply = crate::wire::discovery::encode_reply(probe, &kv, discovery::KEEP)?;
        self.probes.answered += 1;
        log::debug!("discovery: answered {} with {addr}", got.from);
        Some((reply, addr.ip()))
    }

    /// Connection `c`, which must be open.
    pub(super) fn conn(&mut self, c: usize) -> &mut Conn<TcpStream> {
        self.conns[c].as_mut().expect("live connection")
    }

    /// Registers the pipes and pidfd of connection `c`'s running child (a job's first, or
    /// its compile after the audit).
    pub(super) fn watch(&mut self, c: usize) {
        if let Err(e) = self.register_child(c) {
            log::error!("cannot watch the compiler: {e}");
            // Dropping the job kills the child and removes its dir.
            self.conn(c).job = None;
            self.reject(c, RejectReason::Internal, 0, e.to_string());
        }
    }

    fn register_child(&mut self, c: usize) -> io::Result<()> {
        let reg = self.poll.registry();
        let job = self.conns[c]
            .as_mut()
            .and_then(|k| k.job.as_mut())
            .expect("a running job");
        for (pipe, what) in [(&mut job.stdout, OUT), (&mut job.stderr, ERR)] {
            let p = nonblocking(pipe.take().expect("new child"))?;
            let fd = p.as_raw_fd();
            *pipe = Some(p);
            reg.register(&mut SourceFd(&fd), token(c, what), Interest::READABLE)?;
        }
        reg.register(
            &mut SourceFd(&job.pidfd.as_raw_fd()),
            token(c, PID),
            Interest::READABLE,
        )
    }

    /// A pipe of connection `c`'s child is readable (or closed).
    fn on_pipe(&mut self, c: usize, stderr: bool) {
        let Some(job) = self.conns[c].as_mut().and_then(|k| k.job.as_mut()) else {
            return;
        };
        // A pipe at EOF is dropped by `drain`, which closes and so deregisters its fd.
        job.drain(stderr);
        self.maybe_finish(c);
    }

    /// Connection `c`'s child exited (its pidfd is readable): reaped, its pipes drained.
    fn on_exit(&mut self, c: usize) {
        let reg = self.poll.registry();
        let Some(job) = self.conns[c].as_mut().and_then(|k| k.job.as_mut()) else {
            return;
        };
        job.reap();
        if job.status.is_some() {
            let _ = reg.deregister(&mut SourceFd(&job.pidfd.as_raw_fd()));
            // The compiler may have exited before we drained the last bytes.
            job.drain(false);
            job.drain(true);
        }
        self.maybe_finish(c);
    }

    /// The client closed or broke the connection.
    pub(super) fn peer_gone(&mut self, c: usize) {
        let conn = self.conn(c);
        if let Some(mut s) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        let conn = self.conns[c].as_mut().expect("live connection");
        if let Some(job) = &conn.job {
            log::info!("{}: client went away; killing {}", conn.peer, job.label);
            job.kill();
            // The slot and the dir are freed when the pidfd says the compiler is gone.
            return;
        }
        if let Phase::Waiting(_) = conn.phase {
            self.slots.forget(c);
        }
        self.release_slot(c);
        self.close(c);
    }

    /// Writes pending output; registers for writability only while something is left.
    pub(super) fn flush(&mut self, c: usize) {
        let now = Instant::now();
        let conn = self.conns[c].as_mut().expect("live connection");
        match conn.flush(now) {
            Ok(true) => {
                if conn.wants_write {
                    conn.wants_write = false;
                    if let Some(s) = conn.stream.as_mut() {
                        let _ =
                            self.poll
                                .registry()
                                .reregister(s, token(c, SOCK), Interest::READABLE);
                    }
                }
                if matches!(conn.phase, Phase::Closing) && conn.job.is_none() {
                    if let Some(s) = conn.stream.as_ref() {
                        let _ = s.shutdown(std::net::Shutdown::Write);
                    }
                    self.close(c);
                }
            }
            Ok(false) => {
                if !conn.wants_write {
                    conn.wants_write = true;
                    if let Some(s) = conn.stream.as_mut() {
                        let _ = self.poll.registry().reregister(
                            s,
                            token(c, SOCK),
                            Interest::READABLE | Interest::WRITABLE,
                        );
                    }
                }
            }
            Err(_) => self.peer_gone(c),
        }
    }

    /// Frees connection `c`: its socket, its slot if it held one, its place in the slab;
    /// its bytes go into the totals.
    pub(super) fn close(&mut self, c: usize) {
        if let Some(mut conn) = self.conns[c].take() {
            if let Some(mut s) = conn.stream.take() {
                let _ = self.poll.registry().deregister(&mut s);
            }
            if conn.job.is_some() {
                // Never expected: a job is only dropped after its pidfd fired.
                log::error!("closing a connection with a live job");
            }
            if conn.holds_slot {
                self.slots.release(conn.peer.ip());
            }
            self.slots.counters.bytes_in += conn.bytes_in;
            self.slots.counters.bytes_out += conn.bytes_out;
            self.live -= 1;
            self.free.push(c);
        }
    }

    /// The clocks, at every turn of the loop: idle mirrors expire, slots are shared, the
    /// heat is sampled about once a second, and every connection's own clock is looked at.
    fn timers(&mut self, now: Instant) {
        self.mirrors.expire(now);
        self.share_slots();
        self.refresh_thermal(now);
        for c in 0..self.conns.len() {
            self.conn_timers(c, now);
        }
    }

    /// Connection `c`'s clock, by its phase: a hello or input that takes too long, an idle
    /// peer, a request that waited too long for a slot, a running job's timeout and
    /// heartbeat.
    fn conn_timers(&mut self, c: usize, now: Instant) {
        let idle = self.config.idle_timeout;
        let queue_wait = self.config.queue_wait;
        let Some(conn) = self.conns[c].as_mut() else {
            return;
        };
        match &conn.phase {
            Phase::Hello if now.duration_since(conn.opened) > idle => {
                log::info!("{}: no whole request within {idle:?}; closing", conn.peer);
                self.peer_gone(c);
            }
            Phase::Input(_) if conn.input_too_slow(now).is_some() => {
                let text = conn.input_too_slow(now).expect("matched");
                log::warn!("{}: {text}; freeing its slot", conn.peer);
                self.slots.counters.too_slow += 1;
                self.reject(c, RejectReason::BadRequest, 0, text);
            }
            Phase::Hello | Phase::Input(_) | Phase::Closing => {
                if now.duration_since(conn.last_io) > idle && conn.job.is_none() {
                    log::info!("{}: idle for {idle:?}; closing", conn.peer);
                    if matches!(conn.phase, Phase::Closing) {
                        self.close(c);
                    } else {
                        self.peer_gone(c);
                    }
                }
            }
            Phase::Waiting(p) => {
                if now.duration_since(p.since) > queue_wait {
                    let text = format!("waited {queue_wait:?} for a free slot");
                    self.slots.counters.busy += 1;
                    self.reject(c, RejectReason::Busy, 500, text);
                }
            }
            Phase::Running { .. } => self.running_timers(c, now),
        }
    }

    /// A running job past `--job-timeout` is killed; its client hears a heartbeat.
    fn running_timers(&mut self, c: usize, now: Instant) {
        let job_timeout = self.config.job_timeout;
        let heartbeat = self.config.heartbeat;
        let conn = self.conns[c].as_mut().expect("live connection");
        if let Some(job) = &conn.job {
            if !job_timeout.is_zero()
                && now.duration_since(job.started) > job_timeout
                && job.status.is_none()
            {
                log::warn!(
                    "{}: {} ran past --job-timeout; killing",
                    conn.peer,
                    job.label
                );
                job.kill();
            }
        }
        if conn.stream.is_some() && now >= conn.next_heartbeat {
            conn.next_heartbeat = now + heartbeat;
            conn.send(&Message::Progress, false);
            self.flush(c);
        }
    }
}
